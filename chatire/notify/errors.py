"""The one error a delivery transport raises: the receiver did not take the notification."""

from __future__ import annotations


class DeliveryFailed(Exception):
    """A webhook or mail delivery failed; ``reason`` is short and safe to log (it never
    holds a secret, a password, or a URL's path, query or credentials)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

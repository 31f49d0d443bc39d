"""The errors of the chat domain; each maps to one PROTOCOL.md error code."""

from __future__ import annotations


class ChatireError(Exception):
    """A refused request: ``code`` and ``status`` are those of PROTOCOL.md."""

    code = "invalid"
    status = 400

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Invalid(ChatireError):
    """Bad input: wrong shape, type, length or range."""

    code, status = "invalid", 400


class Unauthenticated(ChatireError):
    """No credentials, bad credentials, or an expired or revoked token."""

    code, status = "unauthenticated", 401


class Forbidden(ChatireError):
    """Authenticated, but not allowed (not a member)."""

    code, status = "forbidden", 403


class NotFound(ChatireError):
    """No such chat (or route)."""

    code, status = "not_found", 404


class Conflict(ChatireError):
    """The resource exists already (a taken username)."""

    code, status = "conflict", 409


class TooLarge(ChatireError):
    """A request body over the configured limit."""

    code, status = "too_large", 413


class RateLimited(ChatireError):
    """Too many requests; ``retry_after`` says when to try again."""

    code, status = "rate_limited", 429


class Unavailable(ChatireError):
    """The store or the bus cannot be reached right now."""

    code, status = "unavailable", 503

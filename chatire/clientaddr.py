"""The client address of an HTTP request, the key of per-address limits."""

from __future__ import annotations

from twisted.web.iweb import IRequest


def client_address(request: IRequest) -> str:
    """The address of the peer (a UNIX socket or unknown peer is ``"unknown"``)."""
    host = getattr(request.getClientAddress(), "host", None)
    return str(host) if host else "unknown"

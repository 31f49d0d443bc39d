"""Webhook delivery: a signed JSON POST to a member's URL, through a connector that refuses
private addresses at connect time (no SSRF, no DNS-rebinding gap) and reads little back."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
from twisted.internet import defer, error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IConsumer,
    IHostResolution,
    IProtocol,
    IProtocolFactory,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import URI, Agent, HTTPConnectionPool, ResponseFailed
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer

from chatire.notify.errors import DeliveryFailed

log = Logger()

MAX_URL_CHARS = 2048
SIGNATURE_HEADER = b"X-Chatire-Signature"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def signature(body: bytes, secret: str) -> str:
    """The ``X-Chatire-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the raw
    body, keyed by the secret (UTF-8)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_url_problem(url: str) -> str | None:
    """None if ``url`` may be a webhook target (http or https, a host, no user name or
    password, at most MAX_URL_CHARS ASCII characters), else why not (for a 400).

    Addresses are not judged here: the connector checks them each time it connects."""
    if len(url) > MAX_URL_CHARS:
        return f"the webhook URL is longer than {MAX_URL_CHARS} characters"
    if not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        return "the webhook URL must be ASCII, without spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the webhook URL is malformed"
    if parts.scheme not in ("http", "https"):
        return "the webhook URL must be http:// or https://"
    if "@" in parts.netloc:
        return "the webhook URL must not hold a user name or password"
    host = parts.hostname
    if not host:
        return "the webhook URL has no host"
    if port == 0:
        return "the webhook URL's port must be 1 to 65535"
    if not _host_is_valid(host, bracketed=parts.netloc.startswith("[")):
        return "the webhook URL's host is malformed"
    return None


def _host_is_valid(host: str, *, bracketed: bool) -> bool:
    """A DNS name (labels of letters, digits, ``-`` and ``_``), an IPv4 address, or an
    IPv6 address in brackets (no zone)."""
    if bracketed:
        if "%" in host:
            return False
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    name = host[:-1] if host.endswith(".") else host
    return len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def address_refused(address: IPAddress) -> bool:
    """Whether a webhook may not connect to ``address``: loopback, private, link-local,
    multicast, unspecified, reserved or otherwise not global (IPv4-mapped IPv6 judged
    by the IPv4 address it carries)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_loopback or address.is_private or address.is_link_local
            or address.is_multicast or address.is_unspecified or address.is_reserved
            or not address.is_global)


@attrs.frozen
class _Target:
    """A checked webhook URL taken apart: what to connect to and what to ask for."""

    scheme: str
    host: str  # no brackets
    port: int
    uri: bytes  # the request URL, without a fragment

    @classmethod
    def parse(cls, url: str) -> _Target:
        parts = urlsplit(url)
        assert parts.hostname is not None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        uri = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))
        return cls(parts.scheme, parts.hostname, port, uri.encode("ascii"))

    @property
    def shown(self) -> str:
        """``scheme://host:port``: all of the URL a log line may hold."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@implementer(IResolutionReceiver)
class _Addresses:
    """Collects one host name resolution into a Deferred list of addresses."""

    def __init__(self) -> None:
        self.done: Deferred[list[IPAddress]] = Deferred()
        self._found: list[IPAddress] = []

    def resolutionBegan(self, resolution: IHostResolution) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        found = _literal(str(address.host).split("%", 1)[0])
        if found is not None and found not in self._found:
            self._found.append(found)

    def resolutionComplete(self) -> None:
        self.done.callback(self._found)


@implementer(IAgentEndpointFactory)
class _Connector:
    """The Agent's endpoint factory for one request: resolves the host without blocking,
    refuses the request if any address is not allowed, then connects to a checked
    address itself (TLS verified against the URL's host name for https)."""

    def __init__(self, client: WebhookClient, target: _Target) -> None:
        self._client = client
        self._target = target
        self.protocol: IProtocol | None = None

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        return _CheckedEndpoint(self)

    def abort(self) -> None:
        """Drop the connection now (the response is no longer wanted)."""
        transport = getattr(self.protocol, "transport", None)
        if transport is not None:
            transport.abortConnection()

    async def connect(self, factory: IProtocolFactory) -> IProtocol:
        client, target = self._client, self._target
        addresses = await self._resolve()
        refused = [a for a in addresses if address_refused(a)]
        if refused and not client.allow_private:
            raise DeliveryFailed(
                f"the webhook host has a private or reserved address ({refused[0]})")
        failure: Exception | None = None
        for address in addresses:
            endpoint_type = (TCP6ClientEndpoint if address.version == 6
                             else TCP4ClientEndpoint)
            endpoint: IStreamClientEndpoint = endpoint_type(
                client.reactor, str(address), target.port, timeout=client.connect_timeout)
            if target.scheme == "https":
                options = optionsForClientTLS(target.host, trustRoot=client.tls_trust)
                endpoint = wrapClientTLS(options, endpoint)
            try:
                self.protocol = await endpoint.connect(factory)
            except error.ConnectError as e:
                failure = e
                continue
            return self.protocol
        assert failure is not None
        raise failure

    async def _resolve(self) -> list[IPAddress]:
        literal = _literal(self._target.host)
        if literal is not None:
            return [literal]
        receiver = _Addresses()
        self._client.reactor.nameResolver.resolveHostName(
            receiver, self._target.host, self._target.port)
        found = await receiver.done
        if not found:
            raise DeliveryFailed("the webhook host name did not resolve")
        return found


@implementer(IStreamClientEndpoint)
class _CheckedEndpoint:
    """The endpoint the Agent connects with: _Connector.connect, as a Deferred."""

    def __init__(self, connector: _Connector) -> None:
        self._connector = connector

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        if isinstance(protocolFactory, Factory):
            protocolFactory.noisy = False  # the pool's, one a connection: no log line each
        return Deferred.fromCoroutine(self._connector.connect(protocolFactory))


@implementer(IBodyProducer)
class _Body:
    """A request body that is already in memory, written at once."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _Drain(Protocol):
    """Takes a response body and throws it away; past ``cap`` bytes the connection is
    dropped and ``done`` fires (a receiver cannot make us read megabytes)."""

    def __init__(self, cap: int, abort: Any) -> None:
        self._left = cap
        self._abort = abort
        self.done: Deferred[None] = Deferred(lambda _: abort())

    def dataReceived(self, data: bytes) -> None:
        self._left -= len(data)
        if self._left <= 0 and not self.done.called:
            self.done.callback(None)
            self._abort()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.done.called:
            self.done.callback(None)


def _timed_out(result: object, timeout: float) -> None:
    """Whatever a cancelled request failed with (the Agent wraps the cancellation), the
    cause was the deadline."""
    raise defer.TimeoutError(f"no whole reply within {timeout} seconds")


def _cancelled(e: BaseException) -> bool:
    """Whether the request was cancelled (the Agent may wrap the cancellation)."""
    if isinstance(e, ResponseFailed):
        return any(f.check(defer.CancelledError) for f in e.reasons)
    return isinstance(e, defer.CancelledError)


def _reason(e: BaseException) -> str:
    """A short, secret-free account of why a request failed."""
    if isinstance(e, DeliveryFailed):
        return e.reason
    if isinstance(e, defer.TimeoutError):
        return "timed out"
    if isinstance(e, error.TimeoutError):
        return "connect timed out"
    if isinstance(e, error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, error.ConnectError):
        return "could not connect"
    if isinstance(e, ResponseFailed):  # ResponseNeverReceived, RequestTransmissionFailed too
        names = {type(f.value).__module__.split(".")[0] for f in e.reasons}
        if names & {"OpenSSL", "service_identity"}:
            return "TLS failed (certificate not trusted or not for this host)"
        return "connection lost before a whole response"
    return f"failed ({type(e).__name__})"


class WebhookClient:
    """POSTs notification bodies to webhook URLs; one request per connection, no
    redirects followed, at most ``max_response_bytes`` of a reply read."""

    def __init__(self, reactor: Any, *, allow_private: bool = False,
                 connect_timeout: float = 10.0, timeout: float = 15.0,
                 max_response_bytes: int = 4096, tls_trust: Any = None) -> None:
        self.reactor = reactor
        self.allow_private = allow_private
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.tls_trust = tls_trust

    async def post(self, url: str, body: bytes, secret: str | None, *,
                   notification_id: str) -> int:
        """POST ``body`` (JSON) to ``url``, signed when ``secret`` is set; the status of a
        2xx reply, else DeliveryFailed (any other status, a refused address, DNS, connect,
        TLS or a timeout)."""
        problem = webhook_url_problem(url)
        if problem is not None:
            raise DeliveryFailed(problem)
        target = _Target.parse(url)
        headers = Headers({b"Content-Type": [b"application/json"],
                           b"User-Agent": [b"chatire"]})
        if secret is not None:
            headers.addRawHeader(SIGNATURE_HEADER, signature(body, secret).encode("ascii"))
        exchange = Deferred.fromCoroutine(self._exchange(target, headers, body))
        exchange.addTimeout(self.timeout, self.reactor, onTimeoutCancel=_timed_out)
        try:
            status = await exchange
        except Exception as e:
            if _cancelled(e):
                raise defer.CancelledError() from None  # by the caller (timeouts raise else)
            reason = _reason(e)
            log.info("webhook {id} to {target} failed: {reason}", id=notification_id,
                     target=target.shown, reason=reason)
            raise DeliveryFailed(reason) from None
        log.debug("webhook {id} to {target}: {status}", id=notification_id,
                  target=target.shown, status=status)
        return status

    async def _exchange(self, target: _Target, headers: Headers, body: bytes) -> int:
        connector = _Connector(self, target)
        pool = HTTPConnectionPool(self.reactor, persistent=False)
        agent = Agent.usingEndpointFactory(self.reactor, connector, pool=pool)
        response: IResponse = await agent.request(b"POST", target.uri, headers, _Body(body))
        drain = _Drain(self.max_response_bytes, connector.abort)
        response.deliverBody(drain)
        await drain.done
        if 200 <= response.code < 300:
            return int(response.code)
        raise DeliveryFailed(f"HTTP status {response.code}")

"""Real peers on loopback for the notification transports: a self-signed certificate, an
HTTP(S) webhook receiver that records what it got, a silent TCP server, an ESMTP relay."""

from __future__ import annotations

import datetime
import ipaddress
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, PrivateCertificate
from twisted.internet.task import deferLater
from twisted.mail import imap4, smtp
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer


@attrs.frozen
class Cert:
    """A self-signed certificate for ``names``: the server's options, the client's trust."""

    cert_pem: bytes
    private: PrivateCertificate

    @classmethod
    def make(cls, *names: str) -> Cert:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cls(cert_pem, PrivateCertificate.loadPEM(cert_pem + key_pem))

    @property
    def trust(self) -> Certificate:
        """What a client passes as ``tls_trust`` to trust this certificate alone."""
        return Certificate.loadPEM(self.cert_pem)

    def server_options(self) -> Any:
        return self.private.options()


@attrs.define
class Hit:
    """One request the receiver got."""

    path: bytes
    headers: dict[bytes, list[bytes]]
    body: bytes
    tls: bool
    server_name: bytes | None


class Receiver(Resource):
    """A webhook receiver: records every request; the path says how to answer.

    ``/ok`` 200, ``/created`` 201, ``/fail`` 500, ``/redirect`` 302 to ``/target``,
    ``/stream`` 200 then an endless body, ``/stream-fail`` 500 then an endless body."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[Hit] = []
        self.streamed = 0
        self.stream_lost: Deferred[float] = Deferred()

    def render(self, request: Request) -> Any:
        transport: Any = request.channel.transport
        tls = ISSLTransport.providedBy(transport)
        assert request.path is not None
        headers = {k.lower(): v for k, v in request.requestHeaders.getAllRawHeaders()}
        self.hits.append(Hit(request.path, headers, request.content.read(), tls,
                             transport.getHandle().get_servername() if tls else None))
        if request.path == b"/created":
            request.setResponseCode(201)
        elif request.path == b"/fail":
            request.setResponseCode(500)
        elif request.path == b"/redirect":
            request.redirect(b"/target")
        elif request.path in (b"/stream", b"/stream-fail"):
            request.setResponseCode(200 if request.path == b"/stream" else 500)
            self._stream(request)
            return NOT_DONE_YET
        return b'{"ok": true}'

    def _stream(self, request: Request) -> None:
        lost = request.notifyFinish()
        stopped: list[bool] = []

        def gone(_: object) -> None:
            stopped.append(True)
            self.stream_lost.callback(time.monotonic())

        lost.addBoth(gone)

        def more() -> None:
            if not stopped:
                request.write(b"x" * 65536)
                self.streamed += 65536
                reactor.callLater(0.001, more)

        more()


class _QuietSite(Site):
    """No access log: the tests read the log for what the client wrote."""

    noisy = False

    def log(self, request: Request) -> None:
        pass


async def listen_http(tls: Cert | None = None) -> tuple[Receiver, Any]:
    """A receiver on 127.0.0.1 (TLS with ``tls``): the resource and its listening port."""
    receiver = Receiver()
    site = _QuietSite(receiver)
    if tls is None:
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
    else:
        port = reactor.listenSSL(0, site, tls.server_options(), interface="127.0.0.1")
    return receiver, port


class Silent(Protocol):
    """Accepts a connection and never says a word."""

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.lost: Deferred[float] = Deferred()

    def connectionLost(self, reason: Failure) -> None:
        self.lost.callback(time.monotonic())


def listen_silent() -> tuple[Factory, Any]:
    factory = Factory.forProtocol(Silent)
    factory.connections = []  # type: ignore[attr-defined]
    return factory, reactor.listenTCP(0, factory, interface="127.0.0.1")


@attrs.define
class Mail:
    """One mail the relay took: its envelope, what it could see of the session, the text."""

    sender: str
    recipient: str
    tls: bool
    authenticated: bool
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@implementer(smtp.IMessage)
class _Incoming:
    def __init__(self, inbox: Inbox, user: smtp.User) -> None:
        self._inbox, self._user, self._lines = inbox, user, []  # type: ignore[var-annotated]

    def lineReceived(self, line: bytes) -> None:
        self._lines.append(line)

    def eomReceived(self) -> Deferred[None]:
        session = self._user.protocol
        self._inbox.mails.append(Mail(
            str(self._user.orig), str(self._user.dest),
            ISSLTransport.providedBy(session.transport), bool(session.authenticated),
            b"\n".join(self._lines) + b"\n"))
        return succeed(None)

    def connectionLost(self) -> None:
        pass


@implementer(smtp.IMessageDelivery)
class Inbox:
    """Takes every mail for any recipient but ``refused@...`` (550)."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []

    def receivedHeader(self, helo: Any, origin: Any, recipients: Any) -> bytes:
        return b"Received: by relay.test"

    def validateFrom(self, helo: Any, origin: Any) -> Any:
        return origin

    def validateTo(self, user: smtp.User) -> Any:
        if user.dest.local == b"refused":
            raise smtp.SMTPBadRcpt(user)
        return lambda: _Incoming(self, user)


@implementer(IRealm)
class _Realm:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
        return smtp.IMessageDelivery, self.inbox, lambda: None


class Checker(InMemoryUsernamePasswordDatabaseDontUse):
    """The relay's password check, recording each attempt's user name."""

    def __init__(self, **users: bytes) -> None:
        super().__init__(**users)
        self.attempts: list[bytes] = []

    def requestAvatarId(self, credentials: Any) -> Any:
        self.attempts.append(credentials.username)
        return super().requestAvatarId(credentials)


class _RelayFactory(smtp.SMTPFactory):
    def __init__(self, inbox: Inbox, starttls: Cert | None, checker: Checker | None) -> None:
        super().__init__(Portal(_Realm(inbox), [checker]) if checker is not None else None)
        self.inbox, self.starttls, self.checker = inbox, starttls, checker
        self.domain = b"relay.test"

    def buildProtocol(self, addr: Any) -> smtp.ESMTP:
        ctx = self.starttls.server_options() if self.starttls is not None else None
        challengers = {b"LOGIN": smtp.LOGINCredentials, b"PLAIN": imap4.PLAINCredentials}
        p = smtp.ESMTP(challengers if self.checker else None, ctx)
        p.factory, p.portal, p.host = self, self.portal, self.domain
        if self.checker is None:
            p.delivery = self.inbox  # no AUTH: anyone may send
        return p


def listen_smtp(*, starttls: Cert | None = None, implicit: Cert | None = None,
                checker: Checker | None = None) -> tuple[Inbox, Any]:
    """An ESMTP relay on 127.0.0.1: STARTTLS with ``starttls``, TLS from the start with
    ``implicit``, AUTH (LOGIN, PLAIN) against ``checker`` and required when given."""
    inbox = Inbox()
    factory = _RelayFactory(inbox, starttls, checker)
    if implicit is not None:
        port = reactor.listenSSL(0, factory, implicit.server_options(), interface="127.0.0.1")
    else:
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return inbox, port


async def connected(factory: Factory, within: float = 2.0) -> Silent:
    """The silent server's first connection, once it is there."""
    deadline = time.monotonic() + within
    while not factory.connections:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "no connection came"
        await deferLater(reactor, 0.01)
    return factory.connections[0]  # type: ignore[attr-defined,no-any-return]

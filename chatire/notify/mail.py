"""E-mail delivery: one plain-text UTF-8 message through the ``--smtp`` relay (STARTTLS when
offered, AUTH when configured, implicit TLS for ``smtps://``)."""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default
from email.utils import formatdate, parseaddr
from io import BytesIO
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.ssl import CertificateOptions, optionsForClientTLS
from twisted.logger import Logger
from twisted.mail import smtp

from chatire.notify.errors import DeliveryFailed

log = Logger()

MAX_ADDRESS_CHARS = 254
_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
#: Characters that would make one address read as several, or as a display name.
_SPECIALS = set('()<>,;:\\"[]')
_UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@attrs.frozen
class Relay:
    """The ``--smtp`` relay: where it is, how to sign in (if at all), implicit TLS or not."""

    host: str
    port: int
    username: str | None
    password: str | None = attrs.field(repr=False)
    implicit_tls: bool


def parse_smtp_url(url: str) -> Relay:
    """``smtp://[user:pass@]host[:port]`` (port 25, STARTTLS when offered) or ``smtps://``
    (port 465, TLS from the start); user and password are percent-decoded."""
    usage = "--smtp must be smtp://[user:password@]host[:port] or smtps://..."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"{usage}: the URL is malformed") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(f"{usage}: unknown scheme {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError(f"{usage}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{usage}: no path or query allowed")
    if port == 0:
        raise ValueError(f"{usage}: the port must be 1 to 65535")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if bool(username) != bool(password):
        raise ValueError(f"{usage}: give both a user name and a password, or neither")
    return Relay(parts.hostname, port or _DEFAULT_PORTS[parts.scheme], username, password,
                 parts.scheme == "smtps")


def email_problem(address: str) -> str | None:
    """None if ``address`` is one plausible ASCII e-mail address, else why not."""
    if len(address) > MAX_ADDRESS_CHARS:
        return f"the address is longer than {MAX_ADDRESS_CHARS} characters"
    if not address.isascii():
        return "only ASCII addresses are supported"
    if any(c <= " " or c == "\x7f" or c in _SPECIALS for c in address):
        return "the address holds a space, a control character or one of ()<>,;:\\\"[]"
    local, at, domain = address.partition("@")
    if not at or "@" in domain:
        return "the address must hold exactly one @"
    if not local or len(local) > 64:
        return "the part before the @ must be 1 to 64 characters"
    labels = domain.split(".")
    if not domain or any(not label or label[0] == "-" or label[-1] == "-"
                         for label in labels):
        return "the domain after the @ is malformed"
    return None


def _one_line(text: str) -> str:
    """Header text on one line: control characters and line breaks become spaces."""
    return _UNSAFE_TEXT.sub(" ", text).strip()


class _Sender(smtp.ESMTPSender):
    """ESMTPSender without its protocol transcript (which would hold the AUTH exchange)."""

    debug = False


def _reason(e: BaseException) -> str:
    """A short, secret-free account of why the relay did not take a mail."""
    if isinstance(e, DeliveryFailed):
        return e.reason
    if isinstance(e, defer.TimeoutError | smtp.SMTPTimeoutError):
        return "the relay timed out"
    if isinstance(e, smtp.AUTHDeclinedError):
        return f"the relay refused the credentials ({e.code})"
    if isinstance(e, smtp.AUTHRequiredError | smtp.EHLORequiredError):
        return "the relay offers no AUTH mechanism we support"
    if isinstance(e, smtp.TLSRequiredError):
        return "the relay does not offer STARTTLS, and a password is only sent over TLS"
    if isinstance(e, smtp.TLSError):
        return "TLS with the relay failed"
    if isinstance(e, smtp.SMTPConnectError):
        cause = type(e.__cause__).__module__.split(".")[0] if e.__cause__ else ""
        if cause in ("OpenSSL", "service_identity"):
            return "TLS with the relay failed (certificate not trusted or not for this host)"
        return "could not connect to the relay"
    if isinstance(e, smtp.SMTPClientError):
        return f"the relay refused the mail ({e.code})"
    return f"failed ({type(e).__name__})"


class MailClient:
    """Sends one notification e-mail per call through the relay; returns once the relay
    accepted it."""

    def __init__(self, reactor: Any, relay: Relay, mail_from: str, *, timeout: float = 30.0,
                 tls_trust: Any = None) -> None:
        envelope = parseaddr(mail_from)[1]
        problem = email_problem(envelope) if envelope else "no address"
        if _UNSAFE_TEXT.search(mail_from):
            problem = "it holds a control character"
        if problem is not None:
            raise ValueError(f"--mail-from is not a usable address: {problem}")
        self.reactor = reactor
        self.relay = relay
        self.mail_from = mail_from
        self.envelope_from = envelope
        self.timeout = timeout
        self.tls_trust = tls_trust

    def message(self, to: str, subject: str, text: str, message_id: str) -> bytes:
        """The whole message (LF line ends: Twisted's SMTP client sends CRLF): From, To,
        Subject, Date, Message-ID, Auto-Submitted, and ``text`` as UTF-8 plain text."""
        domain = self.envelope_from.rpartition("@")[2]
        msg = EmailMessage(policy=default)
        msg["From"] = self.mail_from
        msg["To"] = Address(addr_spec=to)
        msg["Subject"] = _one_line(subject)
        msg["Date"] = formatdate(self.reactor.seconds(), usegmt=True)
        msg["Message-ID"] = f"<{_ID_UNSAFE.sub('-', message_id)[:128] or 'chatire'}@{domain}>"
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text, charset="utf-8", cte="quoted-printable")
        return msg.as_bytes()

    async def send(self, to: str, subject: str, text: str, message_id: str) -> None:
        """Hand one mail to the relay; DeliveryFailed if the relay refuses it (or the
        address), cannot be reached or secured, or takes longer than ``timeout``."""
        problem = email_problem(to)
        if problem is not None:
            raise DeliveryFailed(f"bad recipient address: {problem}")
        sending = self._send(to, self.message(to, subject, text, message_id))
        try:
            await sending.addTimeout(self.timeout, self.reactor)
        except defer.CancelledError:
            raise  # by the caller: a timeout raises TimeoutError
        except Exception as e:
            reason = _reason(e)
            log.info("mail {id} via {relay}:{port} failed: {reason}", id=message_id,
                     relay=self.relay.host, port=self.relay.port, reason=reason)
            raise DeliveryFailed(reason) from None
        log.debug("mail {id} accepted by {relay}:{port}", id=message_id,
                  relay=self.relay.host, port=self.relay.port)

    def _send(self, to: str, message: bytes) -> Deferred[Any]:
        relay = self.relay
        password = relay.password.encode("utf-8") if relay.password is not None else None
        username = relay.username.encode("utf-8") if relay.username is not None else None
        # A password only ever goes over TLS verified against the relay's name; without
        # one, STARTTLS is opportunistic (encrypted if offered, as MTAs do, unverified).
        verified = optionsForClientTLS(relay.host, trustRoot=self.tls_trust)
        starttls = verified if password is not None else CertificateOptions()

        def cancel(_: Deferred[Any]) -> None:
            factory.sendFinished = True
            if factory.currentProtocol is not None:
                factory.currentProtocol.transport.abortConnection()
            else:
                connector.disconnect()

        done: Deferred[Any] = Deferred(cancel)
        factory = smtp.ESMTPSenderFactory(
            username, password, self.envelope_from, to, BytesIO(message), done,
            # No idle timeout of its own: send() has the one deadline (a second timer
            # firing after the first cancelled the send would find no Deferred left).
            retries=0, timeout=None, contextFactory=starttls,
            heloFallback=password is None, requireAuthentication=password is not None,
            requireTransportSecurity=password is not None)
        factory.protocol = _Sender
        factory.domain = self.envelope_from.rpartition("@")[2].encode("ascii")
        if relay.implicit_tls:
            connector = self.reactor.connectSSL(relay.host, relay.port, factory, verified,
                                                timeout=self.timeout)
        else:
            connector = self.reactor.connectTCP(relay.host, relay.port, factory,
                                                timeout=self.timeout)
        return done

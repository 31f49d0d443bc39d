"""E-mail delivery through a real Twisted ESMTP relay on loopback: the message as received,
STARTTLS, AUTH only over verified TLS, implicit TLS, refusals and timeouts."""

from __future__ import annotations

import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred

from chatire.notify.errors import DeliveryFailed
from chatire.notify.mail import MailClient, Relay
from tests.notify.peers import Cert, Checker, connected, listen_silent, listen_smtp

FROM = "Chatire <notify@chat.example>"
PASSWORD = "pässwörd: 100%"


def relay(port: Any, *, password: str | None = None, implicit: bool = False,
          host: str = "localhost") -> Relay:
    return Relay(host, port.getHost().port, "relay-user" if password else None, password,
                 implicit)


async def failure(call: Any) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as caught:
        await call
    return caught.value.reason, time.monotonic() - started


@pytest_twisted.ensureDeferred
async def test_plain_delivery_arrives_as_built() -> None:
    inbox, port = listen_smtp()
    try:
        text = "Bob in »Ünïcode«: hello\n.\n..leading dots stay\n" + "long " * 40 + "\n"
        await MailClient(reactor, relay(port), FROM).send(
            "alice@example.org", "New message in »Ünïcode«", text, "n-1")
    finally:
        await port.stopListening()
    [mail] = inbox.mails
    assert (mail.sender, mail.recipient) == ("notify@chat.example", "alice@example.org")
    assert not mail.tls and not mail.authenticated
    message = mail.message
    assert message["From"] == FROM
    assert message["To"] == "alice@example.org"
    assert message["Subject"] == "New message in »Ünïcode«"
    assert message["Message-ID"] == "<n-1@chat.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content() == text  # dot-stuffing undone, UTF-8 intact


@pytest_twisted.ensureDeferred
async def test_no_header_injection_through_the_subject_or_the_id() -> None:
    inbox, port = listen_smtp()
    try:
        await MailClient(reactor, relay(port), FROM).send(
            "alice@example.org", "hi\r\nBcc: eve@evil.example\r\n\r\nbody", "text",
            "id>\r\nBcc: eve@evil.example")
    finally:
        await port.stopListening()
    message = inbox.mails[0].message
    assert message["Bcc"] is None
    assert message["Subject"] == "hi Bcc: eve@evil.example body"
    assert "\n" not in message["Message-ID"] and message["Message-ID"].count("<") == 1
    assert [m.recipient for m in inbox.mails] == ["alice@example.org"]


@pytest_twisted.ensureDeferred
async def test_starttls_and_auth_with_a_trusted_relay() -> None:
    cert, checker = Cert.make("localhost"), Checker(**{"relay-user": PASSWORD.encode()})
    inbox, port = listen_smtp(starttls=cert, checker=checker)
    try:
        await MailClient(reactor, relay(port, password=PASSWORD), FROM,
                         tls_trust=cert.trust).send("alice@example.org", "s", "t", "n-2")
    finally:
        await port.stopListening()
    [mail] = inbox.mails
    assert mail.tls and mail.authenticated
    assert checker.attempts == [b"relay-user"]


@pytest_twisted.ensureDeferred
async def test_the_relay_requires_auth() -> None:
    # Without credentials the relay (which needs them) refuses the sender.
    cert, checker = Cert.make("localhost"), Checker(**{"relay-user": PASSWORD.encode()})
    inbox, port = listen_smtp(starttls=cert, checker=checker)
    try:
        reason, _ = await failure(MailClient(reactor, relay(port), FROM).send(
            "alice@example.org", "s", "t", "n-3"))
    finally:
        await port.stopListening()
    assert reason == "the relay refused the mail (550)"
    assert inbox.mails == []


@pytest_twisted.ensureDeferred
async def test_a_wrong_password_fails() -> None:
    cert, checker = Cert.make("localhost"), Checker(**{"relay-user": PASSWORD.encode()})
    inbox, port = listen_smtp(starttls=cert, checker=checker)
    try:
        reason, _ = await failure(MailClient(
            reactor, relay(port, password="wrong-password"), FROM, tls_trust=cert.trust,
        ).send("alice@example.org", "s", "t", "n-4"))
    finally:
        await port.stopListening()
    assert reason == "the relay refused the credentials (535)"
    assert checker.attempts == [b"relay-user"] and inbox.mails == []


@pytest_twisted.ensureDeferred
async def test_a_password_is_never_sent_over_an_untrusted_or_missing_tls() -> None:
    cert, checker = Cert.make("localhost"), Checker(**{"relay-user": PASSWORD.encode()})
    untrusted, port1 = listen_smtp(starttls=cert, checker=checker)
    no_tls, port2 = listen_smtp(checker=checker)
    try:
        reason1, _ = await failure(MailClient(reactor, relay(port1, password=PASSWORD), FROM)
                                   .send("alice@example.org", "s", "t", "n-5"))
        reason2, _ = await failure(MailClient(reactor, relay(port2, password=PASSWORD), FROM)
                                   .send("alice@example.org", "s", "t", "n-6"))
    finally:
        await port1.stopListening()
        await port2.stopListening()
    assert reason1.startswith("TLS with the relay failed")
    assert reason2.startswith("the relay does not offer STARTTLS")
    assert checker.attempts == [] and untrusted.mails == no_tls.mails == []


@pytest_twisted.ensureDeferred
async def test_without_credentials_starttls_is_used_when_offered() -> None:
    # Opportunistic: encrypted, not verified (no password is at stake).
    inbox, port = listen_smtp(starttls=Cert.make("elsewhere.example"))
    try:
        await MailClient(reactor, relay(port), FROM).send("alice@example.org", "s", "t", "n-7")
    finally:
        await port.stopListening()
    assert inbox.mails[0].tls


@pytest_twisted.ensureDeferred
async def test_smtps_is_tls_from_the_start_and_verified() -> None:
    cert, checker = Cert.make("localhost"), Checker(**{"relay-user": PASSWORD.encode()})
    inbox, port = listen_smtp(implicit=cert, checker=checker)
    try:
        await MailClient(reactor, relay(port, password=PASSWORD, implicit=True), FROM,
                         tls_trust=cert.trust).send("alice@example.org", "s", "t", "n-8")
        reason, _ = await failure(MailClient(reactor, relay(port, implicit=True), FROM)
                                  .send("alice@example.org", "s", "t", "n-9"))
    finally:
        await port.stopListening()
    assert [(m.tls, m.authenticated) for m in inbox.mails] == [(True, True)]
    assert reason.startswith("TLS with the relay failed")


@pytest_twisted.ensureDeferred
async def test_a_refused_recipient_fails() -> None:
    inbox, port = listen_smtp()
    try:
        reason, _ = await failure(MailClient(reactor, relay(port), FROM).send(
            "refused@example.org", "s", "t", "n-10"))
    finally:
        await port.stopListening()
    assert reason == "the relay refused the mail (550)"
    assert inbox.mails == []


@pytest_twisted.ensureDeferred
async def test_a_silent_relay_times_out() -> None:
    silent, port = listen_silent()
    try:
        reason, took = await failure(MailClient(reactor, relay(port), FROM, timeout=0.5)
                                     .send("alice@example.org", "s", "t", "n-11"))
        [connection] = silent.connections  # type: ignore[attr-defined]
        await connection.lost.addTimeout(2, reactor)
    finally:
        await port.stopListening()
    assert reason == "the relay timed out"
    assert took < 2.0


@pytest_twisted.ensureDeferred
async def test_a_send_cancelled_by_the_caller_is_cancelled_and_its_connection_closed() -> None:
    silent, port = listen_silent()
    try:
        call = Deferred.fromCoroutine(MailClient(reactor, relay(port), FROM).send(
            "alice@example.org", "s", "t", "n-12"))
        connection = await connected(silent)
        call.cancel()
        with pytest.raises(CancelledError):
            await call
        await connection.lost.addTimeout(2, reactor)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_no_relay_listening_fails() -> None:
    _, port = listen_silent()
    dead = port.getHost().port
    await port.stopListening()
    reason, took = await failure(MailClient(reactor, Relay("127.0.0.1", dead, None, None, False),
                                            FROM).send("alice@example.org", "s", "t", "n-12"))
    assert reason == "could not connect to the relay"
    assert took < 2.0


@pytest.mark.parametrize("to", ["not-an-address", "a@b@c", "a b@example.org",
                                "a@example.org\r\nRCPT TO:<eve@evil.example>"])
@pytest_twisted.ensureDeferred
async def test_a_bad_recipient_fails_without_a_connection(to: str) -> None:
    silent, port = listen_silent()
    try:
        reason, _ = await failure(MailClient(reactor, relay(port), FROM).send(to, "s", "t", "x"))
    finally:
        await port.stopListening()
    assert reason.startswith("bad recipient address")
    assert silent.connections == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("mail_from", ["", "nobody", "x@y\r\nBcc: eve@evil.example", "a@@b"])
def test_a_bad_sender_is_refused_at_start(mail_from: str) -> None:
    with pytest.raises(ValueError, match="--mail-from"):
        MailClient(reactor, Relay("localhost", 25, None, None, False), mail_from)

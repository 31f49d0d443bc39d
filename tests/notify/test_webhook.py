"""Webhook delivery against real receivers on loopback: signed POSTs, statuses, no redirects,
a capped read, timeouts, the private-address refusal at connect time, and TLS."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import formatEvent, globalLogPublisher

from chatire.notify.errors import DeliveryFailed
from chatire.notify.webhook import WebhookClient
from tests.notify.peers import Cert, Receiver, connected, listen_http, listen_silent

BODY = b'{"type": "chatire.notification", "id": "n-1", "text": "hi"}'
SECRET = "webhook-secret-do-not-log"


@pytest_twisted.async_yield_fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    hits, port = await listen_http()
    yield hits, port.getHost().port
    await port.stopListening()


def client(**options: Any) -> WebhookClient:
    return WebhookClient(reactor, **{"allow_private": True, "timeout": 5.0, **options})


async def failure(call: Any) -> tuple[DeliveryFailed, float]:
    """The DeliveryFailed a call raises, and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as caught:
        await call
    return caught.value, time.monotonic() - started


@pytest_twisted.ensureDeferred
async def test_a_signed_post_reaches_the_receiver_as_sent(receiver: tuple[Receiver, int]) -> None:
    hits, port = receiver
    status = await client().post(f"http://127.0.0.1:{port}/ok?token=abc", BODY, SECRET,
                                 notification_id="n-1")
    assert status == 200
    [hit] = hits.hits
    assert (hit.path, hit.body) == (b"/ok", BODY)
    assert hit.headers[b"content-type"] == [b"application/json"]
    assert hit.headers[b"host"] == [f"127.0.0.1:{port}".encode()]
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert hit.headers[b"x-chatire-signature"] == [f"sha256={expected}".encode()]


@pytest_twisted.ensureDeferred
async def test_no_secret_no_signature_and_any_2xx_is_delivered(
        receiver: tuple[Receiver, int]) -> None:
    hits, port = receiver
    assert await client().post(f"http://127.0.0.1:{port}/created", BODY, None,
                               notification_id="n-2") == 201
    assert b"x-chatire-signature" not in hits.hits[0].headers


@pytest_twisted.ensureDeferred
async def test_a_500_is_a_failure(receiver: tuple[Receiver, int]) -> None:
    hits, port = receiver
    failed, _ = await failure(client().post(f"http://127.0.0.1:{port}/fail", BODY, SECRET,
                                            notification_id="n-3"))
    assert failed.reason == "HTTP status 500"
    assert len(hits.hits) == 1


@pytest_twisted.ensureDeferred
async def test_a_redirect_is_a_failure_and_is_not_followed(
        receiver: tuple[Receiver, int]) -> None:
    hits, port = receiver
    failed, _ = await failure(client().post(f"http://127.0.0.1:{port}/redirect", BODY, None,
                                            notification_id="n-4"))
    assert failed.reason == "HTTP status 302"
    assert [h.path for h in hits.hits] == [b"/redirect"]  # /target never asked


@pytest.mark.parametrize(("path", "outcome"), [("/stream", 200), ("/stream-fail", 500)])
@pytest_twisted.ensureDeferred
async def test_an_endless_reply_is_cut_after_the_cap(receiver: tuple[Receiver, int], path: str,
                                                     outcome: int) -> None:
    # The body never ends: reading it whole would never return; the cap cuts it at once.
    hits, port = receiver
    started = time.monotonic()
    call = client(timeout=10.0, max_response_bytes=4096).post(
        f"http://127.0.0.1:{port}{path}", BODY, None, notification_id="n-5")
    if outcome == 200:
        assert await call == 200
    else:
        failed, _ = await failure(call)
        assert failed.reason == "HTTP status 500"
    assert time.monotonic() - started < 2.0
    lost_at = await hits.stream_lost.addTimeout(5, reactor)
    assert lost_at - started < 3.0  # the receiver saw the connection dropped


@pytest_twisted.ensureDeferred
async def test_a_silent_receiver_times_out_and_the_connection_is_closed() -> None:
    silent, port = listen_silent()
    try:
        failed, took = await failure(client(timeout=0.5).post(
            f"http://127.0.0.1:{port.getHost().port}/", BODY, None, notification_id="n-6"))
        assert failed.reason == "timed out"
        assert 0.4 < took < 2.0
        [connection] = silent.connections  # type: ignore[attr-defined]
        await connection.lost.addTimeout(2, reactor)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_post_cancelled_by_the_caller_is_cancelled_and_its_connection_closed() -> None:
    silent, port = listen_silent()
    try:
        call = Deferred.fromCoroutine(client(timeout=10.0).post(
            f"http://127.0.0.1:{port.getHost().port}/", BODY, None, notification_id="n-6"))
        connection = await connected(silent)
        call.cancel()
        with pytest.raises(CancelledError):
            await call
        await connection.lost.addTimeout(2, reactor)
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_refused_connection_fails() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    failed, took = await failure(client().post(f"http://127.0.0.1:{port}/", BODY, None,
                                               notification_id="n-7"))
    assert failed.reason == "connection refused"
    assert took < 2.0


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: further SYNs go unanswered (Linux drops them)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.2)
        yield port
        for filler in fillers:
            filler.close()


@pytest_twisted.ensureDeferred
async def test_a_connect_that_hangs_fails_at_the_connect_timeout(full_backlog: int) -> None:
    failed, took = await failure(client(connect_timeout=0.5, timeout=10.0).post(
        f"http://127.0.0.1:{full_backlog}/", BODY, None, notification_id="n-8"))
    assert failed.reason == "connect timed out"
    assert 0.4 < took < 3.0


@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "2130706433", "0.0.0.0",
    "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254",
    "224.0.0.1", "240.0.0.1", "255.255.255.255", "[fe80::1]", "[fc00::1]", "[ff02::1]",
    "[::]",
])
@pytest_twisted.ensureDeferred
async def test_private_addresses_are_refused_before_connecting(
        receiver: tuple[Receiver, int], host: str) -> None:
    hits, port = receiver
    failed, took = await failure(WebhookClient(reactor, timeout=5.0).post(
        f"http://{host}:{port}/ok", BODY, SECRET, notification_id="n-9"))
    assert failed.reason.startswith("the webhook host has a private or reserved address (")
    assert took < 1.0  # refused, not a connection attempt that timed out
    assert hits.hits == []


@pytest_twisted.ensureDeferred
async def test_allow_private_lets_loopback_through_by_name_and_address(
        receiver: tuple[Receiver, int]) -> None:
    hits, port = receiver
    for host in ("127.0.0.1", "localhost"):
        assert await client().post(f"http://{host}:{port}/ok", BODY, None,
                                   notification_id="n-10") == 200
    assert [h.headers[b"host"] for h in hits.hits] == [[f"127.0.0.1:{port}".encode()],
                                                       [f"localhost:{port}".encode()]]


@pytest_twisted.ensureDeferred
async def test_a_name_that_does_not_resolve_fails() -> None:
    failed, _ = await failure(client().post("http://no-such-host.invalid/", BODY, None,
                                            notification_id="n-11"))
    assert failed.reason == "the webhook host name did not resolve"


@pytest.mark.parametrize("url", ["ftp://example.com/", "http://user:pw@example.com/"])
@pytest_twisted.ensureDeferred
async def test_a_bad_url_fails_without_a_request(url: str) -> None:
    failed, _ = await failure(client().post(url, BODY, None, notification_id="n-12"))
    assert "pw" not in failed.reason


@pytest_twisted.async_yield_fixture
async def tls_receiver() -> AsyncIterator[tuple[Receiver, int, Cert]]:
    cert = Cert.make("localhost")
    hits, port = await listen_http(cert)
    yield hits, port.getHost().port, cert
    await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_https_with_a_trusted_certificate_for_the_name(
        tls_receiver: tuple[Receiver, int, Cert]) -> None:
    hits, port, cert = tls_receiver
    assert await client(tls_trust=cert.trust).post(
        f"https://localhost:{port}/ok", BODY, SECRET, notification_id="n-13") == 200
    [hit] = hits.hits
    assert hit.tls and hit.body == BODY
    assert hit.server_name == b"localhost"  # SNI is the URL's host name


@pytest_twisted.ensureDeferred
async def test_https_with_an_untrusted_certificate_fails(
        tls_receiver: tuple[Receiver, int, Cert]) -> None:
    hits, port, _ = tls_receiver
    failed, _ = await failure(client().post(f"https://localhost:{port}/ok", BODY, SECRET,
                                            notification_id="n-14"))
    assert failed.reason.startswith("TLS failed")
    assert hits.hits == []


@pytest_twisted.ensureDeferred
async def test_https_with_a_trusted_certificate_for_another_name_fails(
        tls_receiver: tuple[Receiver, int, Cert]) -> None:
    # The certificate names "localhost", the URL names 127.0.0.1: the same server, refused.
    hits, port, cert = tls_receiver
    failed, _ = await failure(client(tls_trust=cert.trust).post(
        f"https://127.0.0.1:{port}/ok", BODY, SECRET, notification_id="n-15"))
    assert failed.reason.startswith("TLS failed")
    assert hits.hits == []


@pytest_twisted.ensureDeferred
async def test_logs_hold_neither_the_secret_nor_the_path_or_query(
        receiver: tuple[Receiver, int]) -> None:
    _, port = receiver
    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    try:
        for path, allow in (("/ok", True), ("/fail", True), ("/ok", False)):
            try:
                await client(allow_private=allow).post(
                    f"http://127.0.0.1:{port}{path}?token=query-secret", BODY, SECRET,
                    notification_id="n-16")
            except DeliveryFailed as e:
                lines.append(e.reason)
    finally:
        globalLogPublisher.removeObserver(observe)
    text = "\n".join(lines)
    assert f"http://127.0.0.1:{port}" in text  # failures are logged, as scheme://host:port
    for secret in (SECRET, "query-secret", "token"):
        assert secret not in text

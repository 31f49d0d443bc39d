"""The client address of an HTTP request: the peer's, or X-Forwarded-For's from a trusted proxy."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.web.test.requesthelper import DummyRequest

from chatire.clientaddr import client_address, trusted_networks

TRUSTED = trusted_networks(["127.0.0.1", "10.0.0.0/8", "::1"])


def request(peer: object, *forwarded: str) -> DummyRequest:
    r = DummyRequest([b""])
    r.client = peer
    for line in forwarded:
        r.requestHeaders.addRawHeader(b"X-Forwarded-For", line.encode())
    return r


@pytest.mark.parametrize("peer, headers, expected", [
    # Not from a trusted proxy: the header is whatever the client wrote; ignored.
    ("203.0.113.1", ["198.51.100.1"], "203.0.113.1"),
    ("203.0.113.1", [], "203.0.113.1"),
    # From a trusted proxy: the right-most address that is not a trusted proxy.
    ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
    ("127.0.0.1", ["6.6.6.6, 198.51.100.1, 10.1.2.3"], "198.51.100.1"),
    ("127.0.0.1", ["6.6.6.6", "198.51.100.1,10.1.2.3"], "198.51.100.1"),  # two header lines
    ("127.0.0.1", ["198.51.100.1:4711"], "198.51.100.1"),
    ("127.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
    ("127.0.0.1", ["::ffff:198.51.100.1"], "198.51.100.1"),
    ("127.0.0.1", ["10.0.0.1, 10.0.0.2"], "10.0.0.1"),  # proxies all the way: the first
    ("127.0.0.1", [], "127.0.0.1"),  # a trusted proxy's own request
    ("127.0.0.1", ["unknown"], "unknown"),
])
def test_client_address(peer: str, headers: list[str], expected: str) -> None:
    assert client_address(request(IPv4Address("TCP", peer, 1234), *headers), TRUSTED) \
        == expected


def test_ipv6_peers_and_unix_sockets() -> None:
    assert client_address(request(IPv6Address("TCP", "::1", 1), "192.0.2.7"), TRUSTED) \
        == "192.0.2.7"
    assert client_address(request(IPv6Address("TCP", "2001:db8::5", 1), "192.0.2.7"),
                          TRUSTED) == "2001:db8::5"
    assert client_address(request(UNIXAddress(b"/run/chatire.sock")), TRUSTED) == "local"


def test_no_trusted_proxy_means_the_peer() -> None:
    assert client_address(request(IPv4Address("TCP", "127.0.0.1", 1), "192.0.2.7"), ()) \
        == "127.0.0.1"


def test_a_bad_trusted_proxy_is_refused() -> None:
    with pytest.raises(ValueError, match="--trusted-proxy"):
        trusted_networks(["proxy.example.org"])

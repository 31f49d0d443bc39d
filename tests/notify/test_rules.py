"""The transports' pure rules: the signature, which webhook URLs, addresses, relay URLs and
e-mail addresses are accepted."""

from __future__ import annotations

import ipaddress

import pytest

from chatire.notify.mail import Relay, email_problem, parse_smtp_url
from chatire.notify.webhook import address_refused, signature, webhook_url_problem


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # RFC 4231 test case 2.
    assert signature(b"what do ya want for nothing?", "Jefe") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    assert signature(b"{}", "k\u00e9y") != signature(b"{} ", "k\u00e9y")


@pytest.mark.parametrize("url", [
    "http://example.com/hook",
    "https://hooks.slack.com/services/T000/B000/XXXX?x=1#frag",
    "http://example.com:8080",
    "https://EXAMPLE.com./a",
    "http://[2001:db8::1]:8443/x",
    "http://127.0.0.1:8000/",  # addresses are judged when connecting, not here
    "https://under_score.example/",
    "https://x/" + "a" * (2048 - len("https://x/")),
])
def test_acceptable_webhook_urls(url: str) -> None:
    assert webhook_url_problem(url) is None


@pytest.mark.parametrize(("url", "why"), [
    ("", "http"),
    ("example.com/hook", "http"),
    ("ftp://example.com/", "http"),
    ("javascript:alert(1)", "http"),
    ("file:///etc/passwd", "http"),
    ("http:///path", "no host"),
    ("http://user:pw@example.com/", "user name or password"),
    ("http://user@example.com/", "user name or password"),
    ("http://:pw@example.com/", "user name or password"),
    ("https://x/" + "a" * (2049 - len("https://x/")), "2048"),
    ("http://exa mple.com/", "ASCII"),
    ("http://example.com/\n", "ASCII"),
    ("http://example.com/\t", "ASCII"),
    ("http://b\u00fccher.example/", "ASCII"),
    ("http://example.com:0/", "port"),
    ("http://example.com:99999/", "malformed"),
    ("http://example.com:x/", "malformed"),
    ("http://[::1/", "malformed"),
    ("http://[fe80::1%25eth0]/", "host"),
    ("http://[not-v6]/", "malformed"),
    ("http://%31%32%37.0.0.1/", "host"),
    ("http://-bad-.example/", "host"),
    ("http://a..b/", "host"),
    ("http://" + "a" * 64 + ".example/", "host"),
])
def test_bad_webhook_urls(url: str, why: str) -> None:
    problem = webhook_url_problem(url)
    assert problem is not None and why in problem
    assert "pw" not in problem


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.255.254", "0.0.0.0", "10.1.2.3", "172.31.255.255",
    "192.168.0.1", "100.64.0.1", "169.254.169.254", "192.0.0.1", "198.18.0.1",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "2001:db8::1", "100::1",
])
def test_private_and_special_addresses_are_refused(address: str) -> None:
    assert address_refused(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [
    "93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not address_refused(ipaddress.ip_address(address))


@pytest.mark.parametrize(("url", "relay"), [
    ("smtp://mail.example.org", Relay("mail.example.org", 25, None, None, False)),
    ("smtp://mail.example.org:587/", Relay("mail.example.org", 587, None, None, False)),
    ("smtps://mail.example.org", Relay("mail.example.org", 465, None, None, True)),
    ("smtps://u%40x.org:p%3As%25s%20w@mail.example.org:2465",
     Relay("mail.example.org", 2465, "u@x.org", "p:s%s w", True)),
    ("smtp://[::1]:25", Relay("::1", 25, None, None, False)),
])
def test_relay_urls(url: str, relay: Relay) -> None:
    assert parse_smtp_url(url) == relay


@pytest.mark.parametrize("url", [
    "", "mail.example.org", "http://mail.example.org", "smtp://", "smtp://:25",
    "smtp://user@mail.example.org", "smtp://:secret@mail.example.org", "smtp://user:@host",
    "smtp://mail.example.org:0", "smtp://mail.example.org:99999", "smtp://host:x",
    "smtp://mail.example.org/path", "smtp://mail.example.org?x=1",
])
def test_bad_relay_urls(url: str) -> None:
    with pytest.raises(ValueError, match="--smtp must be") as caught:
        parse_smtp_url(url)
    assert "secret" not in str(caught.value)


def test_the_relay_password_is_not_in_its_repr() -> None:
    assert "s3cret" not in repr(parse_smtp_url("smtp://u:s3cret@mail.example.org"))


@pytest.mark.parametrize("address", [
    "alice@example.org", "a.b+tag@sub.example.co.uk", "x@localhost", "o'brien@example.ie",
    "a" * 64 + "@" + "b" * 181 + ".example",  # 254 characters
])
def test_acceptable_email_addresses(address: str) -> None:
    assert email_problem(address) is None


@pytest.mark.parametrize(("address", "why"), [
    ("", "one @"),
    ("alice", "one @"),
    ("alice@@example.org", "one @"),
    ("a@b@example.org", "one @"),
    ("@example.org", "before the @"),
    ("a" * 65 + "@example.org", "before the @"),
    ("alice@", "domain"),
    ("alice@.example.org", "domain"),
    ("alice@example..org", "domain"),
    ("alice@-example.org", "domain"),
    ("alice@example.org.", "domain"),
    ("a" * 64 + "@" + "b" * 182 + ".example", "254"),
    ("alice @example.org", "space"),
    ("alice@example.org\r\nBcc: eve@evil.example", "space"),
    ("alice@example.org\n", "space"),
    ("alice\x00@example.org", "control"),
    ("alice\x7f@example.org", "control"),
    ("Alice <alice@example.org>", "space"),
    ("alice@example.org,eve@evil.example", ","),
    ("\"alice\"@example.org", "space"),
    ("al\u00efce@example.org", "ASCII"),
    ("alice@example.org\u2028", "ASCII"),
])
def test_bad_email_addresses(address: str, why: str) -> None:
    problem = email_problem(address)
    assert problem is not None and why in problem

"""The notification options: --smtp, --mail-from, --public-url and the flag
--webhook-allow-private, from the command line and from CHATIRE_* variables."""

from __future__ import annotations

import pytest
from twisted.python import usage

from chatire.config import from_environment
from chatire.tap import Options


def _parsed(*argv: str, environ: dict[str, str] | None = None) -> Options:
    options = Options(environ or {})
    options.parseOptions(list(argv))
    return options


def test_the_defaults_send_no_mail_and_keep_webhooks_off_private_addresses() -> None:
    config = _parsed().config
    assert (config.smtp, config.mail_from, config.public_url) == ("", "", "")
    assert config.webhook_allow_private is False


def test_the_flag_and_its_variable() -> None:
    assert _parsed("--webhook-allow-private").config.webhook_allow_private is True
    on = {"CHATIRE_WEBHOOK_ALLOW_PRIVATE": "1"}
    assert _parsed(environ=on).config.webhook_allow_private is True
    assert from_environment(on).webhook_allow_private is True
    assert from_environment({"CHATIRE_WEBHOOK_ALLOW_PRIVATE": "0"}).webhook_allow_private is False
    with pytest.raises(ValueError, match="webhook-allow-private"):
        from_environment({"CHATIRE_WEBHOOK_ALLOW_PRIVATE": "perhaps"})


def test_a_relay_and_a_public_url() -> None:
    config = _parsed("--smtp", "smtps://u:p%40ss@mail.example.org", "--mail-from",
                     "chat@example.org", "--public-url", "https://chat.example.org").config
    assert config.smtp.startswith("smtps://") and config.public_url == "https://chat.example.org"


@pytest.mark.parametrize("argv", [
    ("--smtp", "ftp://mail.example.org"),
    ("--smtp", "smtp://user@mail.example.org"),  # a user without a password
    ("--public-url", "chat.example.org"),
])
def test_bad_values_stop_the_start_with_the_options_name(argv: tuple[str, str]) -> None:
    with pytest.raises(usage.UsageError, match=argv[0].removeprefix("--")):
        _parsed(*argv)

"""URLs in messages and logs never carry a password."""

from __future__ import annotations

import pytest

from chatire.urls import redacted


@pytest.mark.parametrize(("url", "shown"), [
    ("amqp://guest:s3cr@t@10.0.0.1:5672/%2F", "amqp://guest:***@10.0.0.1:5672/%2F"),
    ("postgresql://chatire:pw@db/chatire?pool=4", "postgresql://chatire:***@db/chatire?pool=4"),
    ("postgresql://chatire@db/chatire", "postgresql://chatire@db/chatire"),
    ("postgresql:///chatire?host=/run/pg&password=pw&pool=2",
     "postgresql:///chatire?host=/run/pg&password=***&pool=2"),
    ("postgresql://u@/d?sslpassword=x", "postgresql://u@/d?sslpassword=***"),
    ("memory://", "memory://"),
    ("sqlite:///var/lib/chatire/chatire.db", "sqlite:///var/lib/chatire/chatire.db"),
    ("not a url", "not a url"),
])
def test_passwords_are_hidden(url: str, shown: str) -> None:
    assert redacted(url) == shown

"""The UI's files: every one the UI needs is served with its type and headers; nothing
else is (no listings, no ``..``, no NUL), and a miss is a JSON 404, never a 500."""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import pytest_twisted
from twisted.internet import threads

from chatire.service import default_web_root

IMPORT = r'from\s+"(/[^"]+)"|import\(\s*"(/[^"]+)"'
TYPES = {".js": "javascript", ".css": "text/css", ".html": "text/html"}


def raw_get(port: int, target: bytes, method: bytes = b"GET") -> tuple[int, dict[str, str],
                                                                        bytes]:
    """One request with the target exactly as given (no client-side normalising)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(method + b" " + target + b" HTTP/1.0\r\nHost: x\r\n\r\n")
        answer = b"".join(iter(lambda: s.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def needed_files() -> set[str]:
    """What index.html loads, and every module the JavaScript imports, transitively."""
    root = default_web_root()
    index = root.child("index.html").getContent().decode()
    todo = re.findall(r'(?:src|href)="(/[^"]*)"', index)
    found = {"/", "/index.html"}
    while todo:
        path = todo.pop()
        if path in found:
            continue
        found.add(path)
        if path.endswith(".js"):
            text = root.preauthChild(path.lstrip("/")).getContent().decode()
            todo += [a or b for a, b in re.findall(IMPORT, text)]
    return found


@pytest_twisted.ensureDeferred
async def test_every_file_the_ui_needs_is_served_with_its_type_and_headers(
        make_daemon: Any) -> None:
    daemon = await make_daemon()
    port = daemon.ports[0].getHost().port
    files = needed_files()
    assert "/js/views/chatlist.js" in files and len(files) > 10
    for path in [*sorted(files), "/c/AbCdEf123"]:
        status, headers, body = await threads.deferToThread(raw_get, port, path.encode())
        assert status == 200 and body, path
        kind = TYPES[path[path.rfind("."):]] if "." in path else "text/html"
        assert kind in headers["content-type"], (path, headers)
        assert headers["content-security-policy"].startswith("default-src 'self'")
        assert headers["x-content-type-options"] == "nosniff"
    status, headers, body = await threads.deferToThread(raw_get, port, b"/app.js", b"HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


@pytest_twisted.ensureDeferred
async def test_folders_dot_dot_nul_and_misses_are_json_404s(make_daemon: Any) -> None:
    daemon = await make_daemon()
    port = daemon.ports[0].getHost().port
    for target in (b"/js/", b"/js", b"/js/views/", b"/%00", b"/app.js%00", b"/..%2f",
                   b"/..%2fchatire%2fapi.py", b"/%2e%2e/pyproject.toml", b"/js/../../setup.py",
                   b"/%2fetc%2fpasswd", b"//etc/passwd", b"/nothing.js", b"/js/nothing.js",
                   b"/app.js/", b"/app.js/x", b"/.hidden", b"/index.html/.."):
        status, _, body = await threads.deferToThread(raw_get, port, target)
        assert status == 404, (target, status, body[:200])
        assert json.loads(body)["error"]["code"] == "not_found", target
        assert "Index of" not in body.decode("utf-8", "replace")
    assert (await threads.deferToThread(raw_get, port, b"/healthz"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_a_path_that_is_not_utf8_is_a_json_400_with_nothing_logged(
        make_daemon: Any) -> None:
    from twisted.logger import globalLogPublisher

    daemon = await make_daemon()
    port = daemon.ports[0].getHost().port
    failures: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None:
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        for target in (b"/%ff", b"/api/chats/%c3%28", b"/js/%80.js"):
            status, _, body = await threads.deferToThread(raw_get, port, target)
            assert status == 400, (target, status, body[:200])
            assert json.loads(body)["error"]["code"] == "invalid", target
    finally:
        globalLogPublisher.removeObserver(observe)
    assert failures == []  # no traceback per request

"""nginx in front of two daemons, with a config derived from contrib/nginx/chatire.conf:
the HTTP API, ws:// and wss:// upgrades (with the Origin check behind the proxy), both
backends serving, /metrics kept private, plain HTTP redirected."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from autobahn.twisted.websocket import WebSocketClientFactory, connectWS
from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.web.client import Agent
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from tests.support.client import Api, Socket, _Socket
from tests.support.daemons import REPO, DaemonProcess, free_port, fresh_vhost, sleep
from tests.support.services import fresh_database

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

CONF = REPO / "contrib" / "nginx" / "chatire.conf"


def _block(text: str, start: int) -> tuple[int, int]:
    """The span of the brace block that opens at or after ``start``."""
    depth, i = 0, text.index("{", start)
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return start, j + 1
    raise ValueError("unbalanced braces")


def derive(conf: str, *, backends: list[int], redirect: int, https: int, plain: int,
           cert: Path, key: Path) -> str:
    """contrib/nginx/chatire.conf with test ports and certificate, plus a plain-HTTP copy
    of its TLS server block (so ws:// is tried through the same locations as wss://)."""
    text = re.sub(r"(?m)^\s*server 127\.0\.0\.1:\d+[^;]*;\n", "", conf)
    servers = "".join(f"    server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n"
                      for port in backends)
    text = text.replace("    least_conn;\n", "    least_conn;\n" + servers, 1)
    text = re.sub(r"(?m)^\s*listen \[::\]:\d+[^;]*;\n", "", text)
    text = text.replace("listen 80;", f"listen 127.0.0.1:{redirect};")
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;")
    text = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};", text)
    text = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};", text)
    start, end = _block(text, text.rindex("server {", 0, text.index("ssl_certificate")))
    tls = text[start:end]
    assert "ssl_certificate" in tls
    copy = re.sub(r"(?m)^\s*(ssl_\w+|add_header Strict-Transport-Security).*\n", "", tls)
    copy = copy.replace(f"listen 127.0.0.1:{https} ssl;", f"listen 127.0.0.1:{plain};")
    return text + "\n# plain-HTTP copy of the TLS server (test only)\n" + copy + "\n"


def main_conf(prefix: Path, site: Path) -> str:
    temp = "".join(f"    {name}_temp_path {prefix / name};\n"
                   for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} info;\n"
            "events { worker_connections 512; }\n"
            f"http {{\n{temp}    include {site};\n}}\n")


@implementer(IPolicyForHTTPS)
class TrustOnly:
    """Verify the server against one self-signed certificate."""

    def __init__(self, pem: bytes) -> None:
        self.root = Certificate.loadPEM(pem)

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return optionsForClientTLS(hostname.decode(), trustRoot=self.root)


async def open_socket(url: str, origin: str, token: str, tls: Any = None) -> Socket:
    """A WebSocket client (tests.support.client's) for ws:// or wss:// URLs."""
    factory = WebSocketClientFactory(url, origin=origin)
    factory.protocol = _Socket
    factory.frames, factory.opened, factory.closed = DeferredQueue(), Deferred(), Deferred()
    factory.closed_code = None
    socket = Socket(factory)
    connectWS(factory, contextFactory=tls)
    socket.protocol = await factory.opened
    socket.send({"type": "auth", "token": token})
    assert (await socket.next())["type"] == "ready"
    return socket


@pytest.fixture
def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if found is None:
        message = "nginx is not installed (run .ci/ensure-nginx: apt-get install nginx-light)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def backing() -> Iterator[tuple[str, str]]:
    with fresh_database() as db, fresh_vhost() as (_, amqp):
        yield db, amqp


@pytest.fixture
def configured(nginx_binary: str, backing: tuple[str, str], tmp_path: Path) -> dict[str, Any]:
    """Two daemons (not started yet), a self-signed certificate, a checked nginx config."""
    db, amqp = backing
    daemons = [DaemonProcess(tmp_path, db, amqp, "--log-format", "json", "--send-rate", "0",
                             name=name) for name in ("a", "b")]
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    ports = {"redirect": free_port(), "https": free_port(), "plain": free_port()}
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    site = prefix / "chatire.conf"
    site.write_text(derive(CONF.read_text(), backends=[d.port for d in daemons], cert=cert,
                           key=key, **ports))
    conf = prefix / "nginx.conf"
    conf.write_text(main_conf(prefix, site))
    command = [nginx_binary, "-e", str(prefix / "error.log"), "-p", str(prefix),
               "-c", str(conf)]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    return {"daemons": daemons, "ports": ports, "cert": cert.read_bytes(), "prefix": prefix,
            "command": command}


@pytest_twisted.async_yield_fixture
async def stack(configured: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The daemons and nginx, running; stopped by their PIDs afterwards."""
    daemons, ports, prefix = configured["daemons"], configured["ports"], configured["prefix"]
    proc = None
    try:
        await defer.gatherResults([defer.ensureDeferred(d.start()) for d in daemons])
        proc = subprocess.Popen([*configured["command"], "-g", "daemon off;"],  # noqa: ASYNC220
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        plain = f"http://127.0.0.1:{ports['plain']}"
        for _ in range(100):
            try:
                response = await treq.get(plain + "/healthz", persistent=False)
                await response.content()
                if response.code == 200:
                    break
            except Exception:  # nginx not listening yet
                pass
            assert proc.poll() is None, (prefix / "error.log").read_text()
            await sleep(0.05)
        yield {**configured, "plain": plain, "https": f"https://127.0.0.1:{ports['https']}"}
    finally:
        if proc is not None:
            proc.terminate()  # our child, by its PID
            proc.wait(timeout=10)
        for daemon in daemons:
            await daemon.stop()


@pytest_twisted.ensureDeferred
async def test_api_and_websockets_through_nginx(stack: dict[str, Any]) -> None:
    plain, https = stack["plain"], stack["https"]
    tls_client = HTTPClient(Agent(reactor, contextFactory=TrustOnly(stack["cert"])))
    api = Api(plain)
    alice, bob = await api.user(), await api.user()
    uri = await alice.new_chat()
    await bob.join(uri)

    # HTTPS: the API answers through TLS.
    response = await tls_client.get(https + "/api/me",
                                    headers={"Authorization": f"Bearer {alice.token}"})
    assert response.code == 200 and (await response.json())["user"]["id"] == alice.id
    response = await tls_client.get(https + "/metrics")
    assert response.code == 404  # metrics stay on the daemons' private listeners
    await response.content()

    # ws:// and wss://, each with the browser Origin of the address it came through.
    tls = optionsForClientTLS("127.0.0.1", trustRoot=Certificate.loadPEM(stack["cert"]))
    ws_url = plain.replace("http://", "ws://") + "/ws"
    wss_url = https.replace("https://", "wss://") + "/ws"
    over_ws = await open_socket(ws_url, plain, bob.token)
    over_wss = await open_socket(wss_url, https, alice.token, tls)
    for socket in (over_ws, over_wss):
        await socket.subscribe(uri)
    with pytest.raises(ConnectionError, match="403"):
        await open_socket(wss_url, plain, alice.token, tls)  # http:// origin on https
    response = await tls_client.post(
        https + f"/api/chats/{uri}/messages", json.dumps({"message": "via nginx"}).encode(),
        headers={"Authorization": f"Bearer {alice.token}",
                 "Content-Type": "application/json"})
    assert response.code == 201
    await response.content()
    for socket in (over_ws, over_wss):
        assert (await socket.next_of("message"))["message"] == "via nginx"

    # Both daemons served requests that came through nginx.
    for _ in range(6):
        status, _ = await alice.call("GET", "/api/chats")
        assert status == 200
    for daemon in stack["daemons"]:
        records = [json.loads(line) for line in daemon.log.read_text().splitlines()]
        proxied = [r for r in records if r.get("namespace") == "chatire.access"
                   and r.get("forwarded_for") == "127.0.0.1"]
        assert proxied, f"daemon {daemon.log.name} got nothing through nginx"

    # Plain HTTP on the public port is a redirect to HTTPS.
    response = await treq.get(f"http://127.0.0.1:{stack['ports']['redirect']}/c/x",
                              persistent=False, allow_redirects=False)
    assert response.code == 301
    assert response.headers.getRawHeaders("location")[0].startswith("https://")
    await response.content()
    for socket in (over_ws, over_wss):
        await socket.close()


def test_the_proxy_read_timeout_outlasts_the_ping_interval() -> None:
    from chatire.config import Config

    conf = CONF.read_text()
    config = Config()
    timeouts = [float(t) for t in re.findall(r"proxy_read_timeout (\d+)s;", conf)]
    assert timeouts and min(timeouts) > config.ping_interval + config.ping_timeout
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf

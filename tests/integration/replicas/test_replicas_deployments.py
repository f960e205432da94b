"""Two replicas over the other single-server URL forms: `unix://` (a local socket) and `rediss://`
(TLS, the server's certificate checked against a test CA): sessions flow between replicas and the
invalidation listener runs over the same transport."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import RedisServer, free_port, missing_dependency, wait_until
from tests.support.replicas import replica, until_changes


async def replicas_agree(url: str) -> None:
    async with replica("A", url) as a, replica("B", url) as b:
        for side in (a, b):  # the listener is up over this transport (its first try may time
            # out on a starved machine, a TLS handshake especially: it retries every 0.5 s)
            await side.until_sample("coherence_tracking_active", 1, 10)
        sid = await a.create({"v": 1})
        assert await b.read(sid) == (200, {"v": 1})
        await a.update(sid, {"v": 2})
        await until_changes(b, sid, {"v": 2})
        await a.delete(sid)
        await until_changes(b, sid, None)


@pytest.fixture(scope="module")
def unix_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        missing_dependency("redis-server", "install the Debian package redis-server")
    workdir = Path(tempfile.mkdtemp(prefix="redis-unix-"))
    socket = workdir / "redis.sock"
    server = RedisServer(extra_args=("--unixsocket", str(socket), "--unixsocketperm", "700"))
    server.workdir = workdir
    server.start()
    yield server
    server.stop()


async def test_unix_socket(unix_server: RedisServer) -> None:
    await replicas_agree(f"unix://{unix_server.workdir / 'redis.sock'}?db=0")


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
    return directory / "ca.crt", directory / "server.crt", directory / "server.key"


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[int, Path]]:
    if shutil.which("redis-server") is None or shutil.which("openssl") is None:
        missing_dependency(
            "redis-server and openssl", "install the Debian packages redis-server, openssl"
        )
    workdir = Path(tempfile.mkdtemp(prefix="redis-tls-"))
    ca, cert, key = make_certificates(workdir)
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(ca),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ping() -> bool:
        client = redis.Redis("127.0.0.1", port, ssl=True, ssl_ca_certs=str(ca), socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    try:
        wait_until(ping, 10)
        yield port, ca
    finally:
        process.terminate()
        process.wait(5)


async def test_tls_with_a_verified_certificate(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    await replicas_agree(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}")

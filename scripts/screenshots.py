"""Regenerate the dashboard screenshots in docs/screenshots/ (`make screenshots`).

Starts a redis-server and two exporter replicas on free loopback ports, sends them a little
traffic (sessions created and read, a few misses) so the cards, trend lines, tables and the
fleet section have something to show, then lets headless Chromium take a desktop and a
phone-width screenshot of the first replica's dashboard.

The pictures show live numbers and clock times, so they differ from run to run: a pixel
comparison would be flaky. `manifest.json` records the SHA-256 of the dashboard files the
pictures were taken of, and tests/unit/test_screenshots.py fails when those files change without
the screenshots being taken again (the one thing that can be compared honestly).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "exporter" / "web" / "static"
OUT = ROOT / "docs" / "screenshots"
SHOTS = {"dashboard.png": "1280,1400", "dashboard-phone.png": "390,2000"}
SETTLE_MS = 6000  # time for the stream to fill the trend lines before the picture


def asset_hashes() -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(STATIC.iterdir())
        if path.is_file()
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


@contextlib.contextmanager
def process(args: list[str], workdir: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    with (workdir / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def traffic(bases: list[str], stop: threading.Event) -> None:
    """Sessions created and read on both replicas, with some misses, until `stop`."""
    with requests.Session() as http:
        ids = [
            http.post(f"{bases[0]}/api/sessions", json={"data": {"n": n}}, timeout=5).json()["id"]
            for n in range(24)
        ]
        n = 0
        while not stop.is_set():
            base = bases[n % len(bases)]
            http.get(f"{base}/api/sessions/{ids[n % len(ids)]}", timeout=5)
            if n % 60 == 0:
                http.get(f"{base}/api/sessions/no-such-session-{n}", timeout=5)
            n += 1
            time.sleep(0.01 if (n // 200) % 2 else 0.03)  # changing rates: visible trends


def screenshot(chromium: str, url: str, size: str, target: Path, workdir: Path) -> None:
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={workdir / target.stem}",  # a fresh profile per picture
            f"--window-size={size}",
            f"--timeout={SETTLE_MS}",
            f"--screenshot={target}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    console = [line for line in done.stderr.decode().splitlines() if "CONSOLE" in line]
    if console:  # the page said something: show it rather than commit a broken picture
        raise SystemExit("\n".join(console))


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    redis_server = shutil.which("redis-server")
    if chromium is None or redis_server is None:
        raise SystemExit("needs chromium and redis-server (make system-deps)")
    OUT.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="screenshots-"))
    redis_port = free_port()
    ports = [free_port(), free_port()]
    redis_args = [redis_server, "--port", str(redis_port), "--save", "", "--appendonly", "no"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(process(redis_args, workdir, "redis"))
        for n, port in enumerate(ports):
            args = [sys.executable, "-m", "exporter", "--listen", f"127.0.0.1:{port}"]
            args += ["--redis-url", f"redis://127.0.0.1:{redis_port}/0"]
            args += ["--snapshot-interval", "0.5", "--health-interval", "2"]
            args += ["--admin-token", "screenshot-demo-token"]
            stack.enter_context(process(args, workdir, f"exporter-{n}"))
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base in bases:
            wait_ready(f"{base}/-/ready")
        stop = threading.Event()
        worker = threading.Thread(target=traffic, args=(bases, stop), daemon=True)
        worker.start()
        time.sleep(2)  # a few snapshots with traffic before the page opens
        try:
            for name, size in SHOTS.items():
                screenshot(chromium, f"{bases[0]}/", size, OUT / name, workdir)
                print(f"wrote {(OUT / name).relative_to(ROOT)} ({size})")
        finally:
            stop.set()
            worker.join(10)
    manifest = {"assets": asset_hashes(), "shots": SHOTS}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

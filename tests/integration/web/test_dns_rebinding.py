"""DNS rebinding against the exporter process: a page on `evil.example` whose name now resolves to
the exporter sends same-origin requests (`Host` and `Origin` both `evil.example`). They must change
nothing and read nothing but `/metrics` and the probes; the names the exporter is known by work.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.exporter_cli import ExporterCli

SEED = "/api/session-metrics"
KNOWN_NAME = "exporter.example.com"


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterCli]:
    workdir: Path = tmp_path_factory.mktemp("rebinding")
    env = {"SESSION_EXPORTER_WEB_ALLOWED_HOST": f"{KNOWN_NAME},.corp.example"}
    running = ExporterCli(workdir, [], env).start()
    try:
        yield running.wait_ready()
    finally:
        assert running.stop() == 0


def as_page_on(host: str, port: int) -> dict[str, str]:
    """The headers a browser sends for a page of `host` calling its own origin."""
    origin = f"http://{host}:{port}"
    return {"Host": f"{host}:{port}", "Origin": origin, "Sec-Fetch-Site": "same-origin"}


def test_a_rebound_page_changes_nothing_and_reads_nothing(exporter: ExporterCli) -> None:
    base, port = exporter.base, exporter.port
    created = requests.post(f"{base}/api/sessions", json={"data": {"n": 1}}, timeout=10).json()
    evil = as_page_on("evil.example", port)
    changes = [
        requests.post(f"{base}{SEED}/cache/clear", headers=evil, timeout=10),
        requests.delete(f"{base}/api/sessions/{created['id']}", headers=evil, timeout=10),
        requests.put(
            f"{base}/api/sessions/{created['id']}", json={"data": {}}, headers=evil, timeout=10
        ),
        requests.post(f"{base}/api/sessions", json={"data": {}}, headers=evil, timeout=10),
    ]
    reads = [
        requests.get(base + path, headers=evil, timeout=10, stream=True)  # the stream never ends
        for path in (
            f"{SEED}/persistence",
            f"{SEED}/realtime",
            f"{SEED}/stream",
            f"/api/sessions/{created['id']}",
            "/api/figma/files/FILE1",
            "/",
        )
    ]
    for answer in changes + reads:
        with answer:
            assert answer.status_code == 403, (answer.request.method, answer.request.url)
            assert answer.json()["error"]["code"] == "host_not_allowed"
            assert "evil.example" not in answer.text  # the Host is never echoed
    stored = requests.get(f"{base}/api/sessions/{created['id']}", timeout=10)
    assert stored.status_code == 200 and stored.json()["data"] == {"n": 1}
    assert "refused a request for Host 'evil.example:" in exporter.log()


def test_scrapes_and_probes_answer_any_host(exporter: ExporterCli) -> None:
    """Prometheus scrapes by whatever name it was given; probes by pod IP or name."""
    headers = {"Host": f"exporter.internal:{exporter.port}"}
    for path in ("/metrics", "/-/healthy", "/-/ready"):
        assert requests.get(exporter.base + path, headers=headers, timeout=10).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "localhost:{port}",
        "[::1]:{port}",
        "10.1.2.3:8080",  # an IP: a port-forward, a pod IP
        f"{KNOWN_NAME}",
        f"{KNOWN_NAME.upper()}.:{{port}}",
        "a.corp.example",  # .corp.example: the domain and its subdomains
        "corp.example:443",
        "app.localhost:{port}",
    ],
)
def test_the_names_the_exporter_is_known_by(exporter: ExporterCli, host: str) -> None:
    headers = as_page_on("x", exporter.port) | {"Host": host.format(port=exporter.port)}
    headers["Origin"] = f"http://{headers['Host']}"
    answer = requests.post(f"{exporter.base}{SEED}/cache/clear", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text

"""--web-config-file as an operator uses it: the exporter process over TLS with basic auth,
scraped by a real Prometheus; wrong passwords, plain HTTP, client certificates, headers, reload."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml

from tests.integration.web.test_cli_serve import exporter_command
from tests.support.prometheus_server import JOB, PrometheusServer
from tests.support.redis_server import free_port, missing_dependency, wait_until
from tests.support.tls import Certificates, make_certificates

PASSWORD = "correct horse battery"


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def write_config(path: Path, certs: Certificates, **extra: Any) -> None:
    config: dict[str, Any] = {
        "tls_server_config": {
            "cert_file": certs.server_cert.name,  # relative to the config file
            "key_file": certs.server_key.name,
            "min_version": "TLS12",
        },
        "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)},
        "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
    }
    for key, value in extra.items():
        config.setdefault(key, {}).update(value)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(yaml.safe_dump(config))
    temporary.replace(path)


class Exporter:
    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.port = free_port()
        self.base = f"https://127.0.0.1:{self.port}"
        self.log = tmp_path / "exporter.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXPORTER_")}
        args = ["--listen", f"127.0.0.1:{self.port}", "--web-config-file", str(config)]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [*exporter_command(), *args], env=env, stderr=log, cwd=tmp_path
            )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.base + path, timeout=5, **kwargs)


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path)


@pytest.fixture
def exporter(tmp_path: Path, certs: Certificates) -> Iterator[Exporter]:
    config = tmp_path / "web.yml"
    write_config(config, certs)
    running = Exporter(tmp_path, config)
    try:
        wait_until(
            lambda: running.get("/-/ready", verify=str(certs.ca)).status_code == 200, timeout=20
        )
        yield running
    finally:
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(15) == 0
        log = running.log.read_text()
        assert "Traceback" not in log and PASSWORD not in log


class HttpsPrometheus(PrometheusServer):
    """Two jobs on the same target: the right login and a wrong one."""

    def __init__(self, ca: Path, port: int) -> None:
        super().__init__(rule_files=())
        self.ca, self.port_of_target = ca, port

    def config(self) -> dict[str, Any]:
        config = super().config()
        job = config["scrape_configs"][0]
        job.update(
            scheme="https",
            basic_auth={"username": "prometheus", "password": PASSWORD},
            tls_config={"ca_file": str(self.ca)},
        )
        wrong = {
            **job,
            "job_name": "wrong-password",
            "basic_auth": {"username": "prometheus", "password": "nope"},
        }
        config["scrape_configs"].append(wrong)
        return config


@pytest.fixture
def prometheus(exporter: Exporter, certs: Certificates) -> Iterator[PrometheusServer]:
    if shutil.which("prometheus") is None:
        missing_dependency("prometheus", "install the Debian package prometheus")
    server = HttpsPrometheus(certs.ca, exporter.port).start()
    try:
        server.set_targets([f"127.0.0.1:{exporter.port}"])
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_prometheus_scrapes_over_https_with_basic_auth(prometheus: PrometheusServer) -> None:
    def health() -> dict[str, dict[str, Any]]:
        return {t["labels"]["job"]: t for t in prometheus.targets() if t["health"] != "unknown"}

    wait_until(lambda: len(health()) == 2, timeout=30, interval=0.2)
    targets = health()
    assert targets[JOB]["health"] == "up", targets[JOB]["lastError"]
    assert targets["wrong-password"]["health"] == "down"
    assert "401" in targets["wrong-password"]["lastError"]
    found = prometheus.wait_for(f'session_exporter_build_info{{job="{JOB}"}}')
    assert found and prometheus.query(f'process_resident_memory_bytes{{job="{JOB}"}} > 0')


def test_logins_open_probes_and_headers(exporter: Exporter, certs: Certificates) -> None:
    ca = str(certs.ca)
    assert exporter.get("/-/healthy", verify=ca).status_code == 200  # probes need no login
    anonymous = exporter.get("/metrics", verify=ca)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert anonymous.json()["error"]["code"] == "unauthorized"
    wrong = exporter.get("/api/session-metrics/realtime", verify=ca, auth=("prometheus", "nope"))
    assert wrong.status_code == 401
    ghost = exporter.get("/metrics", verify=ca, auth=("nobody", PASSWORD))
    assert ghost.status_code == 401
    good = exporter.get("/metrics", verify=ca, auth=("prometheus", PASSWORD))
    assert good.status_code == 200 and "session_exporter_build_info" in good.text
    assert good.headers["X-Frame-Options"] == "deny"
    # Over bcrypt's 72 bytes: a wrong password like any other, never a 500 with a traceback.
    for password in ("x" * 73, PASSWORD + "y" * 100, "\u00e9" * 80):
        answer = exporter.get("/metrics", verify=ca, auth=("prometheus", password))
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
    huge = base64.b64encode(b"nobody:" + b"z" * 5000).decode()
    answer = exporter.get("/metrics", verify=ca, headers={"Authorization": f"Basic {huge}"})
    assert answer.status_code == 401


def test_a_session_held_in_memory_is_still_behind_the_login(
    exporter: Exporter, certs: Certificates
) -> None:
    """The session GET's synchronous memory-hit answer runs after the login check, never before."""
    ca, login = str(certs.ca), ("prometheus", PASSWORD)
    created = requests.post(
        exporter.base + "/api/sessions", json={"data": {"n": 1}}, verify=ca, auth=login, timeout=5
    )
    assert created.status_code == 201
    path = f"/api/sessions/{created.json()['id']}"
    assert exporter.get(path, verify=ca, auth=login).json()["data"] == {"n": 1}  # a memory hit
    anonymous = exporter.get(path, verify=ca)
    assert anonymous.status_code == 401 and "data" not in anonymous.json()
    assert exporter.get(path, verify=ca, auth=("prometheus", "nope")).status_code == 401


def test_plain_http_on_the_tls_port_is_refused(exporter: Exporter, certs: Certificates) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5)
    # and the exporter keeps serving TLS afterwards
    assert exporter.get("/-/healthy", verify=str(certs.ca)).status_code == 200


def test_a_changed_file_is_applied_and_an_invalid_one_kept_out(
    exporter: Exporter, certs: Certificates, tmp_path: Path
) -> None:
    ca, config = str(certs.ca), tmp_path / "web.yml"
    write_config(config, certs, basic_auth_users={"prometheus": bcrypt_hash("rotated pw")})
    wait_until(
        lambda: exporter.get("/metrics", verify=ca, auth=("prometheus", "rotated pw")).ok,
        timeout=10,
        interval=0.2,
    )
    assert exporter.get("/metrics", verify=ca, auth=("prometheus", PASSWORD)).status_code == 401
    config.write_text("tls_server_config: {cert_file: missing.crt, key_file: server.key}\n")

    def rejected() -> bool:
        exporter.get("/-/healthy", verify=ca)  # the file is checked on requests
        return "not reloaded" in exporter.log.read_text()

    wait_until(rejected, timeout=10, interval=0.2)
    assert exporter.get("/metrics", verify=ca, auth=("prometheus", "rotated pw")).ok
    assert "tls_server_config.cert_file" in exporter.log.read_text()


def test_client_certificates_when_required(tmp_path: Path, certs: Certificates) -> None:
    config = tmp_path / "web.yml"
    write_config(
        config,
        certs,
        tls_server_config={
            "client_ca_file": str(certs.ca),
            "client_auth_type": "RequireAndVerifyClientCert",
        },
        basic_auth_users={},
    )
    running = Exporter(tmp_path, config)
    ca, client = str(certs.ca), (str(certs.client_cert), str(certs.client_key))
    try:
        wait_until(
            lambda: running.get("/-/healthy", verify=ca, cert=client).status_code == 200,
            timeout=20,
        )
        # TLS 1.3 rejects a missing client certificate after the handshake: a reset, either way.
        with pytest.raises(requests.ConnectionError):
            running.get("/-/healthy", verify=ca)
    finally:
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(15) == 0
    assert "Traceback" not in running.log.read_text()


def _rejections(exporter: Exporter) -> int:
    return exporter.log.read_text().count("web config not reloaded")


def _statuses_until_rejected(exporter: Exporter, ca: str, before: int) -> list[int]:
    """Anonymous requests, from the rewrite until the exporter has read and refused the file, and
    a few after: what an attacker racing the rewrite gets."""
    statuses: list[int] = []
    deadline = time.monotonic() + 20
    while _rejections(exporter) == before and time.monotonic() < deadline:
        for path in ("/metrics", "/api/session-metrics/persistence", "/"):
            statuses.append(exporter.get(path, verify=ca).status_code)
        if set(statuses) != {401}:
            return statuses  # open: no need to wait for the verdict
    assert _rejections(exporter) > before, "the exporter never re-read the file"
    return statuses + [exporter.get("/metrics", verify=ca).status_code for _ in range(3)]


def test_a_config_rewritten_in_place_never_opens_the_exporter(
    exporter: Exporter, certs: Certificates, tmp_path: Path
) -> None:
    """Truncated to 0 bytes (a non-atomic rewrite) or holding only `basic_auth_users:`: the last
    good configuration stays in force, with a log line, a metric and an event."""
    ca, config, login = str(certs.ca), tmp_path / "web.yml", ("prometheus", PASSWORD)
    for broken in ("", "basic_auth_users:\n"):
        before = _rejections(exporter)
        with config.open("w") as handle:  # in place: the same file, emptied, then written
            handle.write(broken)
        assert set(_statuses_until_rejected(exporter, ca, before)) == {401}, broken
        assert exporter.get("/metrics", verify=ca, auth=login).ok  # the old login still works
    metrics = exporter.get("/metrics", verify=ca, auth=login).text
    assert "session_exporter_web_config_last_reload_successful 0.0" in metrics
    realtime = exporter.get("/api/session-metrics/realtime", verify=ca, auth=login).json()
    rejected = [e for e in realtime["recent_events"] if e["type"] == "web_config_rejected"]
    assert len(rejected) == 2 and "basic_auth_users" in rejected[-1]["message"]
    write_config(config, certs)  # a valid file again: applied, and the metric says so
    wait_until(
        lambda: (
            "last_reload_successful 1.0" in exporter.get("/metrics", verify=ca, auth=login).text
        ),
        timeout=10,
        interval=0.2,
    )

"""A real `prometheus` for tests, on a free loopback port, scraping given targets every second.

It loads the project's recording (and alerting) rules, evaluates them every second, and answers
PromQL through its HTTP API. Targets come from a file_sd file, so they can be set after start:
start Prometheus once per test session (it takes a few seconds to serve its first sample) and
point it at whatever the tests start later.

    prometheus = start_prometheus()
    prometheus.set_targets(["127.0.0.1:9464"])
    prometheus.wait_for_target_up()
    prometheus.query('up{job="session-exporter"}')            # -> [{"metric": ..., "value": ...}]
    prometheus.query_range("rate(x_total[5s])", start, end)   # -> [{"metric": ..., "values": ...}]
    prometheus.stop()

Uses the local `prometheus` binary (the Debian package `prometheus`). Without it, tests fail under
CI and skip locally, saying what to install.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.support.redis_server import free_port, missing_dependency, wait_until

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "prometheus" / "rules"
JOB = "session-exporter"  # the job name the alert rules expect


class PrometheusError(RuntimeError):
    """Prometheus rejected a query (bad PromQL, timeout): the message is its own."""


class PrometheusServer:
    """One prometheus process with a temporary config and TSDB; see the module docstring."""

    def __init__(
        self,
        rule_files: Sequence[Path] = (RULES / "recording.yml", RULES / "alerts.yml"),
        interval: str = "1s",
    ) -> None:
        self.binary = shutil.which("prometheus")
        self.port = free_port()
        self.interval = interval
        self.workdir = Path(tempfile.mkdtemp(prefix="prometheus-test-"))
        self.rule_files = [Path(p) for p in rule_files]
        self.targets_file = self.workdir / "targets.json"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        return {
            "global": {
                "scrape_interval": self.interval,
                "scrape_timeout": self.interval,
                "evaluation_interval": self.interval,
            },
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": JOB,
                    # file_sd is watched with inotify: new targets are picked up at once.
                    "file_sd_configs": [{"files": [str(self.targets_file)]}],
                }
            ],
        }

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        assert self.binary, "prometheus binary missing"
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(self.config()), encoding="utf-8")
        if not self.targets_file.exists():
            self.set_targets([])
        args = [
            self.binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._ready, timeout=timeout, interval=0.05)
        except TimeoutError:
            self.stop()
            raise TimeoutError(
                f"prometheus not ready within {timeout}s: {self.log_tail()}"
            ) from None
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.log_tail()}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
            return bool(response.status == 200)

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def set_targets(self, targets: Sequence[str], **labels: str) -> None:
        """Scrape exactly `targets` (host:port) from now on; written atomically for the watcher."""
        temporary = self.targets_file.with_suffix(".tmp")
        temporary.write_text(json.dumps([{"targets": list(targets), "labels": labels}]))
        temporary.replace(self.targets_file)

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the `data` of a success, PrometheusError otherwise."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType')}: {body.get('error')} ({params})")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        result: list[dict[str, Any]] = self.api("query", **params)["result"]
        return result

    def query_range(
        self, expr: str, start: float, end: float, step: float = 1.0
    ) -> list[dict[str, Any]]:
        data = self.api(
            "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=str(step)
        )
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return active

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its health and last error."""
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def wait_for_target_up(self, timeout: float = 30.0) -> None:
        """Until every target has been scraped successfully (and its samples can be queried)."""

        def scraped() -> bool:
            targets = self.targets()
            return bool(targets) and all(t["health"] == "up" for t in targets)

        wait_until(scraped, timeout=timeout, interval=0.1)
        wait_until(
            lambda: bool(self.query(f'up{{job="{JOB}"}} == 1')), timeout=timeout, interval=0.1
        )

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll an instant query until it returns a series; return them."""
        found: list[dict[str, Any]] = []

        def returns_series() -> bool:
            found[:] = self.query(expr)
            return bool(found)

        try:
            wait_until(returns_series, timeout=timeout, interval=0.2)
        except TimeoutError:
            raise TimeoutError(f"{expr} returned nothing within {timeout}s") from None
        return found

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_prometheus(**kwargs: Any) -> PrometheusServer:
    """Start a local prometheus, or fail (CI) / skip (locally) with the install command."""
    if shutil.which("prometheus") is None:
        missing_dependency(
            "prometheus", "install the Debian package prometheus (`make system-deps`)"
        )
    return PrometheusServer(**kwargs).start()

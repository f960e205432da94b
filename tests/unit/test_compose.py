"""docker-compose.yml and the Dockerfile, checked offline (no Docker engine runs on CI).

The compose file is validated against the Compose Specification's JSON schema. The schema is
vendored as tests/support/compose_spec.json, unmodified: it is `compose/config/compose_spec.json`
from the PyPI package docker-compose==1.29.2 (the last Python release of Compose, which ships the
specification's schema; `pip download --no-deps docker-compose==1.29.2`, wheel sha256
8d5589373b35c8d3b1c8c1182c6e4a4ff14bffa3dd0b605fcd08f73c94cef809).
It is strict (`additionalProperties: false`), so a misspelt key fails. Beyond the schema, the
tests check what the stack promises: the exporter's flags parse with the exporter's own CLI, every
service has a healthcheck, volumes are named, Prometheus scrapes the exporter and loads the rules,
Grafana is provisioned with anonymous access off and its password from the environment.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from exporter.app.cli import load_settings

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "support" / "compose_spec.json"
SCHEMA_SHA256 = "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac"
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    return document


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft201909Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def interpolate(value: str, environ: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} with the given environment."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2) or ""
        if name in environ:
            return environ[name]
        assert ":?" not in match.group(0), f"{name} is required"
        return default

    return INTERPOLATION.sub(substitute, value)


def test_the_vendored_schema_is_the_published_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.Draft201909Validator
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c["services"]["redis"]["healthcheck"].update(intervall="5s"),
        lambda c: c["services"]["exporter"].update(depends_on={"redis": {"condition": "healthy"}}),
        lambda c: c["services"]["grafana"].update(ports="3000:3000"),
    ],
    ids=["misspelt-key", "bad-enum", "wrong-type"],
)
def test_the_schema_rejects_broken_files(
    compose: dict[str, Any], validator: jsonschema.Draft201909Validator, mutate: Any
) -> None:
    broken = copy.deepcopy(compose)
    mutate(broken)
    assert list(validator.iter_errors(broken))


def test_stack_has_the_four_services_with_healthchecks_and_named_volumes(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"exporter", "redis", "prometheus", "grafana"}
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in compose["volumes"], f"{name}: {volume}"
    named = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert set(compose["volumes"]) <= named
    assert {"redis-data", "prometheus-data", "grafana-data"} <= set(compose["volumes"])


def test_exporter_flags_are_the_exporters_own(compose: dict[str, Any]) -> None:
    exporter = compose["services"]["exporter"]
    environ = {key: interpolate(value, {}) for key, value in exporter["environment"].items()}
    settings = load_settings(exporter["command"], environ)
    assert settings.listen == ("0.0.0.0", 9464)
    assert settings.redis_url == "redis://redis:6379/0"
    assert not settings.figma_enabled and not settings.mcp_enabled  # empty = disabled
    assert "127.0.0.1:9464:9464" in exporter["ports"]
    assert exporter["depends_on"]["redis"]["condition"] == "service_healthy"
    # With the optional variables set, the same file enables Figma and MCP.
    enabled = {
        key: interpolate(value, {"FIGMA_TOKEN": "figd_x", "MCP_URL": "http://mcp:3845/mcp"})
        for key, value in exporter["environment"].items()
    }
    settings = load_settings(exporter["command"], enabled)
    assert settings.figma_enabled and settings.mcp_url == "http://mcp:3845/mcp"


def test_prometheus_scrapes_the_exporter_and_loads_the_rules(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in prometheus["volumes"]}
    config_path = mounts["./prometheus/prometheus.yml"]
    assert "--config.file=" + config_path in prometheus["command"]
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "session-exporter")
    assert job["static_configs"][0]["targets"] == ["exporter:9464"]
    rules_dir = str(Path(config_path).parent / "rules")
    assert mounts["./prometheus/rules"] == rules_dir
    for rule_file in config["rule_files"]:
        assert (ROOT / "prometheus" / rule_file).exists(), rule_file
        assert str(Path(config_path).parent / rule_file).startswith(rules_dir)


def test_grafana_is_provisioned_with_anonymous_access_off_and_password_from_env(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]
    env = grafana["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    with pytest.raises(AssertionError, match="GRAFANA_ADMIN_PASSWORD is required"):
        interpolate(env["GF_SECURITY_ADMIN_PASSWORD"], {})
    assert interpolate(env["GF_AUTH_ANONYMOUS_ENABLED"], {}) == "false"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert "127.0.0.1:3000:3000" in grafana["ports"]
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    mount = next(v for v in grafana["volumes"] if v.startswith("./grafana/dashboards:"))
    in_container = mount.split(":")[1]
    assert home.startswith(in_container + "/")
    assert (ROOT / "grafana" / "dashboards" / Path(home).name).exists()


def test_dockerfile_runs_the_exporter_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    final_stage = dockerfile.split("\nFROM ")[-1]
    users = re.findall(r"^USER\s+(\S+)", final_stage, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK ", final_stage, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["session-metrics-exporter"]' in final_stage
    assert "EXPOSE 9464" in final_stage
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8")
    assert "!exporter/" in ignored and "!pyproject.toml" in ignored


def test_the_image_installs_exactly_the_locked_versions() -> None:
    """The build stage exports uv.lock (refusing a stale one) and pip checks every hash."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    build_stage = dockerfile.split("\nFROM ")[1]
    assert (
        "pip install --no-cache-dir --require-hashes -r scripts/uv-requirements.txt" in build_stage
    )
    assert re.search(r"uv export --locked\b.* --extra speed", build_stage)
    assert "--require-hashes --no-deps -r requirements.txt" in build_stage
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert {"!uv.lock", "!scripts/uv-requirements.txt"} <= set(ignored)


def test_redis_persists_every_acknowledged_write(compose: dict[str, Any]) -> None:
    """Append-only file on a named volume: a Redis restart loses nothing the exporter acked."""
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in redis["volumes"]


def test_the_journal_directory_is_on_a_named_volume(compose: dict[str, Any]) -> None:
    exporter = compose["services"]["exporter"]
    journal = exporter["environment"]["SESSION_EXPORTER_JOURNAL_DIR"]
    volume, _, path = next(v for v in exporter["volumes"] if v.endswith(":" + journal)).partition(
        ":"
    )
    assert path == journal and volume in compose["volumes"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f"mkdir -p {journal}" in dockerfile  # owned by the image's user, so it is writable

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.core.errors import ConfigError
from exporter.core.redaction import redact as redact_url
from exporter.core.settings import OPTIONS, Settings, parse_settings, readme_with_table


def test_defaults_work_on_a_laptop() -> None:
    settings = parse_settings({})
    assert settings.listen == ("127.0.0.1", 9464)
    assert settings.redis_url is None
    assert settings.session_ttl == 3600
    assert settings.max_body_bytes == 64 * 1024
    assert settings.slow_threshold_ms == 100
    assert not settings.figma_enabled and not settings.mcp_enabled


def test_values_are_parsed_from_strings_and_yaml_scalars() -> None:
    settings = parse_settings(
        {
            "listen": "0.0.0.0:9000",
            "session-ttl": "60",
            "memory_max_entries": 10,
            "log_level": "DEBUG",
        }
    )
    assert settings.listen == ("0.0.0.0", 9000)
    assert settings.session_ttl == 60.0
    assert settings.memory_max_entries == 10
    assert settings.log_level == "debug"


def test_ipv6_listen_address() -> None:
    assert parse_settings({"listen": "[::1]:9464"}).listen == ("::1", 9464)


@pytest.mark.parametrize(
    ("name", "value", "flag"),
    [
        ("listen", "localhost", "--listen"),
        ("listen", "127.0.0.1:70000", "--listen"),
        ("session_ttl", "-5", "--session-ttl"),
        ("session_ttl", "soon", "--session-ttl"),
        ("memory_max_entries", "0", "--memory-max-entries"),
        ("max_body_bytes", "1.5", "--max-body-bytes"),
        ("redis_url", "http://localhost:6379", "--redis-url"),
        ("figma_api_url", "ftp://example", "--figma-api-url"),
        ("log_level", "verbose", "--log-level"),
        ("no_such_setting", "1", "no_such_setting"),
    ],
)
def test_invalid_values_name_the_setting(name: str, value: str, flag: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_settings({name: value})
    assert flag in str(error.value)


def test_redis_url_with_password_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as error:
        parse_settings({"redis_url": "http://user:hunter2@localhost"})
    assert "hunter2" not in str(error.value)
    settings = parse_settings({"redis_url": "redis://:hunter2@localhost:6379/0"})
    assert "hunter2" not in repr(settings)
    assert settings.redis_url_redacted == "redis://***@localhost:6379/0"


def test_secrets_are_hidden_from_repr() -> None:
    settings = parse_settings({"figma_token": "figd_secret", "admin_token": "admin-secret"})
    assert "figd_secret" not in repr(settings) and "admin-secret" not in repr(settings)


def test_redact_url_leaves_passwordless_urls_alone() -> None:
    assert redact_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert redact_url("redis://default:pw@h:1/0") == "redis://***@h:1/0"


def test_every_setting_has_a_flag_and_an_env_var() -> None:
    names = {option.name for option in OPTIONS}
    assert names == set(Settings.__dataclass_fields__)
    by_name = {option.name: option for option in OPTIONS}
    assert by_name["redis_url"].flag == "--redis-url"
    assert by_name["redis_url"].env == "SESSION_EXPORTER_REDIS_URL"


def test_memory_limit_must_hold_one_body() -> None:
    with pytest.raises(ConfigError, match="--memory-max-bytes"):
        parse_settings({"memory_max_bytes": "1000", "max_body_bytes": "2000"})


def test_readme_documents_every_flag_and_variable() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for option in OPTIONS:
        assert f"`{option.flag}`" in readme and f"`{option.env}`" in readme, option.name


def test_readme_flag_table_is_generated_from_the_settings() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert readme_with_table(readme) == readme, "run .venv/bin/python scripts/flag_table.py"


def test_help_drops_markdown_but_keeps_link_text() -> None:
    by_name = {option.name: option for option in OPTIONS}
    assert by_name["web_config_file"].plain_help.endswith("see docs/web-config.md")
    assert "`" not in by_name["redis_pool_timeout"].plain_help


def test_secrets_and_switches_come_from_the_field_declarations() -> None:
    secrets = {option.name for option in OPTIONS if option.secret}
    assert secrets == {"redis_url", "figma_token", "figma_oauth_token", "mcp_token", "admin_token"}
    assert [option.name for option in OPTIONS if option.switch] == ["access_log"]
    for name, spec in Settings.__dataclass_fields__.items():
        assert spec.repr is not (name in secrets), name


def test_figma_cache_budget_defaults_to_a_quarter_and_fits_the_memory_tier() -> None:
    assert parse_settings({"memory_max_bytes": "4000000"}).figma_cache_budget == 1_000_000
    assert parse_settings({"figma_cache_max_bytes": "123456"}).figma_cache_budget == 123456
    with pytest.raises(ConfigError, match="--figma-cache-max-bytes"):
        parse_settings({"memory_max_bytes": "100000", "figma_cache_max_bytes": "200000"})


def test_allowed_hosts_from_a_repeated_flag_a_list_or_commas() -> None:
    from exporter.app.cli import load_settings

    flags = ["--web-allowed-host", "a.example", "--web-allowed-host", "B.example,*.corp.example"]
    assert load_settings(flags, {}).web_allowed_host == ("a.example", "b.example", ".corp.example")
    env = {"SESSION_EXPORTER_WEB_ALLOWED_HOST": "x.example, y.example"}
    assert load_settings([], env).web_allowed_host == ("x.example", "y.example")
    assert parse_settings({"web_allowed_host": ["c.example", "*"]}).web_allowed_host == (
        "c.example",
        "*",
    )
    assert Settings().web_allowed_host == ()
    for bad in ("http://a.example", "a.example:8080", "a/b", "a b"):
        with pytest.raises(ConfigError, match="--web-allowed-host"):
            parse_settings({"web_allowed_host": bad})


def test_client_limits_settings() -> None:
    settings = parse_settings(
        {
            "web_header_timeout": "2.5",
            "web_body_timeout": "4",
            "web_max_connections": "auto",
            "web_max_connections_per_client": "0",
        }
    )
    assert (settings.web_header_timeout, settings.web_body_timeout) == (2.5, 4.0)
    assert settings.web_max_connections is None and settings.web_max_connections_per_client == 0
    assert parse_settings({"web_max_connections": 500}).web_max_connections == 500
    with pytest.raises(ConfigError, match="--web-header-timeout"):
        parse_settings({"web_header_timeout": "0"})
    with pytest.raises(ConfigError, match="--web-max-connections"):
        parse_settings({"web_max_connections": "-1"})

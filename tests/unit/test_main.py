"""The command line: source precedence and exit code 2 on invalid settings."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.app.cli import EXIT_CONFIG, load_settings, main


def test_flags_beat_environment_beat_yaml(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text("session_ttl: 10\nslow-threshold-ms: 20\nlog_level: warning\n")
    environ = {"SESSION_EXPORTER_SESSION_TTL": "30", "SESSION_EXPORTER_SLOW_THRESHOLD_MS": "40"}
    settings = load_settings(["--config", str(config), "--session-ttl", "50"], environ)
    assert settings.session_ttl == 50
    assert settings.slow_threshold_ms == 40
    assert settings.log_level == "warning"


def test_config_file_from_environment(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yml"
    config.write_text("listen: 127.0.0.1:9999\n")
    assert load_settings([], {"SESSION_EXPORTER_CONFIG": str(config)}).listen == ("127.0.0.1", 9999)


@pytest.mark.parametrize(
    ("argv", "environ", "named"),
    [
        (["--session-ttl", "-1"], {}, "--session-ttl"),
        (["--listen", "nowhere"], {}, "--listen"),
        ([], {"SESSION_EXPORTER_MEMORY_MAX_BYTES": "lots"}, "--memory-max-bytes"),
        (["--redis-url", "mysql://db"], {}, "--redis-url"),
    ],
)
def test_bad_values_exit_2_naming_the_setting(
    argv: list[str],
    environ: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    assert main(argv) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert named in err
    assert len(err.strip().splitlines()) == 1


def test_bad_yaml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yml"
    config.write_text("- just\n- a list\n")
    assert main(["--config", str(config)]) == EXIT_CONFIG
    assert "--config" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.yml")]) == EXIT_CONFIG


def test_console_script_exits_2_as_a_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--slow-threshold-ms", "fast"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--slow-threshold-ms" in result.stderr
    assert "Traceback" not in result.stderr


def test_health_thresholds_from_flag_and_yaml(tmp_path: Path) -> None:
    from exporter.monitoring.service import thresholds_from_settings

    settings = load_settings(
        ["--health-thresholds", "latency_critical_ms=800, cache_hit_poor=0.4"], {}
    )
    thresholds = thresholds_from_settings(settings)
    assert thresholds.latency_critical_ms == 800 and thresholds.cache_hit_poor == 0.4
    config = tmp_path / "exporter.yml"
    config.write_text("slow_threshold_ms: 50\nhealth_thresholds:\n  redis_down_penalty: 40\n")
    thresholds = thresholds_from_settings(load_settings(["--config", str(config)], {}))
    assert thresholds.service_penalty("redis") == 40
    assert thresholds.latency_high_ms == 50  # the latency row follows the slow threshold


@pytest.mark.parametrize(
    "value", ["latency_critical_ms", "no_such_rule=3", "latency_critical_ms=-1"]
)
def test_bad_health_thresholds_exit_2(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--health-thresholds", value]) == EXIT_CONFIG
    assert "--health-thresholds" in capsys.readouterr().err


def test_library_request_logs_are_quiet_unless_debugging() -> None:
    from exporter.app.logging_setup import CHATTY_LOGGERS, configure_logging

    try:
        configure_logging("info")
        assert all(logging.getLogger(name).level == logging.WARNING for name in CHATTY_LOGGERS)
        configure_logging("error")
        assert logging.getLogger("httpx2").level == logging.ERROR
    finally:
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_an_unknown_flag_is_one_line_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--figma-tokn", "x"])
    assert exited.value.code == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "usage:" not in err
    assert "--figma-tokn" in err and "did you mean --figma-token?" in err


def test_invalid_yaml_and_a_misspelt_key_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yml"
    config.write_text("listen: [127.0.0.1\nredis_url: x\n")
    assert main(["--config", str(config)]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not valid YAML at line 2" in err
    config.write_text("redis_ur: redis://localhost\n")
    assert main(["--config", str(config)]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did you mean redis_url?" in err

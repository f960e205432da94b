"""--log-format text|json, secrets redacted in both, and the access log in the same format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from exporter.app.cli import load_settings, secrets_of
from exporter.app.logging_setup import configure_logging

SECRET = "figd_s3cr3t-token"


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging("info", "json", [SECRET], stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_is_one_object_per_line_with_structured_fields(logged: io.StringIO) -> None:
    logging.getLogger("exporter.test").info("hello %s", "world", extra={"route": "/x", "n": 3})
    logging.getLogger("exporter.test").warning("two\nlines")
    first, second = records(logged)
    assert first["message"] == "hello world" and first["level"] == "INFO"
    assert first["logger"] == "exporter.test" and first["time"]
    assert (first["route"], first["n"]) == ("/x", 3)
    assert second["message"] == "two\nlines" and len(logged.getvalue().splitlines()) == 2


def test_secrets_and_url_passwords_are_masked_everywhere(logged: io.StringIO) -> None:
    log = logging.getLogger("exporter.test")
    log.info("token %s", SECRET, extra={"url": "rediss://app:pa55word@db:6380/0"})
    try:
        raise RuntimeError(f"failed with {SECRET} at redis://:hunter22@h:1")
    except RuntimeError:
        log.exception("boom")
    text = logged.getvalue()
    assert SECRET not in text and "pa55word" not in text and "hunter22" not in text
    first, second = records(logged)
    assert first["message"] == "token ***" and first["url"] == "rediss://***@db:6380/0"
    assert "RuntimeError: failed with *** at redis://***@h:1" in str(second["exc_info"])


def test_text_format_masks_too() -> None:
    stream = io.StringIO()
    handler = configure_logging("info", "text", [SECRET], stream=stream)
    try:
        logging.getLogger("exporter.test").error("using %s", SECRET)
    finally:
        logging.getLogger().removeHandler(handler)
    assert stream.getvalue().rstrip().endswith("ERROR exporter.test: using ***")


def test_secrets_come_from_the_settings() -> None:
    settings = load_settings(
        ["--figma-token", SECRET, "--admin-token", "adm1n-t0k", "--redis-url", "redis://:pw12@h:1"],
        {},
    )
    assert sorted(secrets_of(settings)) == sorted([SECRET, "adm1n-t0k", "pw12"])


def test_log_format_and_access_log_flags() -> None:
    assert load_settings(["--log-format", "json", "--access-log"], {}).access_log is True
    assert load_settings(["--access-log", "false"], {}).access_log is False
    assert load_settings([], {"SESSION_EXPORTER_ACCESS_LOG": "yes"}).access_log is True
    assert load_settings([], {}).log_format == "text"

"""Log output: text or one JSON object per line (python-json-logger), secrets redacted in both.

    >>> redact("connecting to redis://:hunter2@db:6379/0", ("tok",))
    'connecting to redis://***@db:6379/0'

Redaction is a handler filter, so it covers every logger, the access log and libraries alike:
it applies `exporter.core.redaction.redact` (the known secret values, any URL's userinfo password
and secret query options) to the message, to string fields and to a formatted traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from exporter.core.redaction import MASK, redact

__all__ = ["MASK", "RedactingFilter", "configure_logging", "make_formatter", "redact"]


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "{asctime}{levelname}{name}{message}"
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}
# Libraries that log every request at INFO (the MCP SDK's HTTP client logs each call and probe).
CHATTY_LOGGERS = ("httpx", "httpx2", "httpcore", "mcp")
# Attributes every LogRecord has: everything else on a record is a structured field.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class RedactingFilter(logging.Filter):
    """Rewrites each record before any formatter sees it; never drops one."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole; short ones (under 4
        # characters) would mask ordinary words and are not secrets worth the name.
        self.secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None  # formatters fall back to the redacted exc_text
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        for key, value in vars(record).items():
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value, self.secrets))
        return True


class _ExporterHandler(logging.StreamHandler[TextIO]):
    """Ours, told apart from handlers others installed (pytest's, an embedding app's)."""


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(JSON_FIELDS, style="{", rename_fields=JSON_NAMES)
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(
    level: str,
    log_format: str = "text",
    secrets: Sequence[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """One stderr handler on the root logger, replacing the one an earlier call installed."""
    handler = _ExporterHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ExporterHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet = max(logging.WARNING, logging.getLevelName(level.upper()))
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "debug" else quiet)
    return handler

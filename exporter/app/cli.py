"""Command line: merge flags, environment and YAML into Settings, then serve until SIGTERM/SIGINT.

The only module that reads os.environ and argv.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import yaml

from exporter.app.gc_tuning import tune_collector
from exporter.app.logging_setup import configure_logging
from exporter.core.build import version_line
from exporter.core.errors import ConfigError, JournalLocked
from exporter.core.redaction import url_secrets
from exporter.core.settings import OPTIONS, Settings, parse_settings
from exporter.monitoring.service import thresholds_from_settings

log = logging.getLogger("exporter")
EXIT_CONFIG = 2
EXIT_LISTEN = 1
# Settings holding URLs: their secrets are the password and secret options inside, not the URL.
URL_SETTINGS = frozenset({"redis_url", "figma_api_url", "mcp_url"})


class ListenError(Exception):
    """The listen address cannot be bound (in use, not permitted)."""


class StartupError(Exception):
    """Start-up failed for a reason the operator must fix (a journal directory that is read-only,
    not ours, or held by another process): one line, exit code 2, like a bad setting."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (with a suggestion), not the usage block."""

    def error(self, message: str) -> NoReturn:
        hint = ""
        if message.startswith("unrecognized arguments:"):
            unknown = message.partition(":")[2].split()[0].partition("=")[0]
            known = [flag for action in self._actions for flag in action.option_strings]
            close = difflib.get_close_matches(unknown, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
        self.exit(EXIT_CONFIG, f"{self.prog}: {message}{hint}; see --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="session-metrics-exporter",
        description="Instrumented session managers exported to Prometheus, a JSON API and SSE.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version_line()}")
    parser.add_argument(
        "--config", metavar="FILE", help="YAML file of settings (keys as the flags, with _ or -)"
    )
    for option in OPTIONS:
        # A switch (`--access-log`) may stand alone or take a value (`--access-log false`); a
        # repeatable flag (`--web-allowed-host a --web-allowed-host b`) collects a list.
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if option.switch else {}
        if option.repeatable:
            extra = {"action": "append"}
        parser.add_argument(
            option.flag,
            dest=option.name,
            default=None,
            help=f"{option.plain_help} [env {option.env}]",
            **extra,
        )
    return parser


def load_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("--config", f"{path} is not valid YAML{_yaml_where(exc)}") from None
    if not isinstance(loaded, dict):
        raise ConfigError("--config", f"{path} must hold a mapping of settings")
    return loaded


def _yaml_where(exc: yaml.YAMLError) -> str:
    """` at line N: problem`, one line (PyYAML's own text spans several, quoting the input)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return where + (f": {problem}" if problem else "")


def merge_sources(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """Flags > environment > YAML > defaults, as one mapping of raw values."""
    config_path = args.config or environ.get("SESSION_EXPORTER_CONFIG")
    values: dict[str, Any] = load_yaml(config_path) if config_path else {}
    for option in OPTIONS:
        if option.env in environ:
            values[option.name] = environ[option.env]
        if getattr(args, option.name) is not None:
            values[option.name] = getattr(args, option.name)
    return values


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    args = build_parser().parse_args(argv)
    settings = parse_settings(merge_sources(args, environ))
    try:  # validated here, not at first health check, so a typo stops start-up
        thresholds_from_settings(settings)
    except ValueError as exc:
        raise ConfigError("--health-thresholds", str(exc)) from None
    if settings.web_config_file:  # TLS files and hashes checked now: exit 2, not a failed start
        server_ssl_context_for(settings.web_config_file)
    if settings.redis_url:  # host lists, master name, options: checked before start-up too
        from exporter.store.redis_client import parse_redis_url

        parse_redis_url(settings.redis_url)
    return settings


def server_ssl_context_for(path: str) -> None:
    from exporter.web.web_config import load_web_config, server_ssl_context

    config = load_web_config(path)
    if config.tls is not None:
        server_ssl_context(config.tls)


def secrets_of(settings: Settings) -> list[str]:
    """The values the log must never show: every secret setting, and the passwords and secret
    query options inside URL settings (masked even where a library quotes them without the URL)."""
    values: list[str] = []
    for option in OPTIONS:
        value = getattr(settings, option.name)
        if not isinstance(value, str) or not value:
            continue
        if option.name in URL_SETTINGS:
            values += url_secrets(value)
        elif option.secret:
            values.append(value)
    return values


def startup_failure(exc: BaseException, settings: Settings) -> str | None:
    """One line for a start-up failure the operator must fix, or None for a real bug."""
    if isinstance(exc, ConfigError):  # a setting found unusable only when used
        return str(exc)
    if isinstance(exc, JournalLocked):
        return f"--journal-dir: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        filename = str(exc.filename or "")
        journal = (settings.journal_dir or "").rstrip("/")
        if journal and filename.startswith(journal):
            inside = f" ({filename})" if filename.rstrip("/") != journal else ""
            return f"--journal-dir {journal}: {exc.strerror}{inside}"
        return f"cannot start: {exc.strerror}" + (f" ({filename})" if filename else "")
    return None


async def serve(settings: Settings) -> None:
    from exporter.web import create_app
    from exporter.web.keys import LIFECYCLE, WEB_CONFIG
    from exporter.web.server import make_runner, raise_open_files_limit, site

    # Handlers first: a SIGTERM that arrives while starting still shuts down cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app = create_app(settings)
    tune_collector(settings.gc_young_threshold)  # before any connection or task exists
    raise_open_files_limit()  # before the runner sizes its connection cap from it
    runner = make_runner(
        app, access=settings.access_log, shutdown_timeout=settings.shutdown_timeout
    )
    try:
        await runner.setup()
    except Exception as exc:
        failure = startup_failure(exc, settings)
        if failure is None:
            raise
        await runner.cleanup()
        raise StartupError(failure) from None
    host, port = settings.listen
    web_config = app.get(WEB_CONFIG)
    ssl_context = web_config.ssl_context if web_config is not None else None
    try:
        await site(runner, host, port, ssl_context, settings.web_header_timeout).start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    log.info(
        "serving on %s://%s:%d (redis %s, figma %s, mcp %s)",
        "https" if ssl_context else "http",
        host,
        port,
        settings.redis_url_redacted or "off: memory only",
        "on" if settings.figma_enabled else "off",
        "on" if settings.mcp_enabled else "off",
    )
    await stop.wait()
    log.info("shutting down: readiness off, finishing in-flight requests")
    app[LIFECYCLE].stopping = True
    if settings.shutdown_drain:
        await asyncio.sleep(settings.shutdown_drain)
    await runner.cleanup()
    log.info("stopped")


def run(settings: Settings) -> None:
    try:
        import uvloop  # optional speed-up, about 1.2x on request handling
    except ImportError:
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv, os.environ)
    except ConfigError as exc:
        print(f"session-metrics-exporter: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_format, secrets_of(settings))
    try:
        run(settings)
    except ListenError as exc:
        log.error("%s", exc)
        return EXIT_LISTEN
    except (StartupError, ConfigError) as exc:  # found while starting (a journal in use)
        log.error("%s", exc)
        return EXIT_CONFIG
    return 0

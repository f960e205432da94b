"""`make bench` / `python -m bench`: every benchmark target of the session store, one table.

Each figure is a median over interleaved runs, compared with a baseline measured in the same run
(the machine is shared and noisy: absolute numbers drift, ratios hold). Misses are printed, not
hidden; the exit status is 0 either way (benchmarks are not tests). The results also go to a JSON
file (git revision, time, machine, every figure) for comparing commits.

    python -m bench                  # everything, about 6 minutes
    python -m bench store failover   # some sections: store, http, metrics, coherence,
                                     # aiohttp-session, redis-restart, journal, memory, gc,
                                     # failover, encode, slow-clients, logins, figma-cache,
                                     # fleet, dashboard
    python -m bench --json out.json  # results there instead of .cache/bench-results.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from bench import (
    aiohttp_session_bench,
    coherence_bench,
    dashboard_bench,
    encode_bench,
    failover_bench,
    figma_cache_bench,
    fleet_bench,
    gc_bench,
    http_bench,
    journal_bench,
    login_bench,
    memory_bench,
    metrics_bench,
    redis_restart_bench,
    slow_clients_bench,
    store_bench,
)
from bench.support import RedisProcess, Result

SECTIONS = (
    "store",
    "http",
    "metrics",
    "coherence",
    "aiohttp-session",
    "redis-restart",
    "journal",
    "memory",
    "gc",
    "failover",
    "encode",
    "slow-clients",
    "logins",
    "figma-cache",
    "fleet",
    "dashboard",
)
DEFAULT_JSON = Path(".cache/bench-results.json")

T = TypeVar("T")


def loop_name() -> str:
    try:
        import uvloop  # noqa: F401

        return "uvloop"
    except ImportError:
        return "asyncio"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def print_table(results: list[Result]) -> None:
    print()
    print(f"{'target':<72} {'median':>11} {'baseline':>11} {'ratio':>7}  {'goal':<7} ok")
    for r in results:
        print(
            f"{r.name:<72} {r.value:>11.2f} {r.baseline:>11.2f} {r.ratio:>6.2f}x  {r.target:<7} "
            f"{'yes' if r.ok else 'MISS'}  ({r.unit})"
        )
        if r.note:
            print(f"    {r.note}")


def sections_run(redis_url: str) -> dict[str, Callable[[], list[Result]]]:
    """Each section's runner, in the order they run."""
    return {
        "store": lambda: run_async(store_bench.run(redis_url)),
        "http": lambda: http_bench.run(redis_url),
        "metrics": lambda: run_async(metrics_bench.run()),
        "coherence": lambda: run_async(coherence_bench.run(redis_url)),
        "aiohttp-session": aiohttp_session_bench.run,  # its own Redis: it kills it
        "redis-restart": lambda: run_async(redis_restart_bench.run(rounds=2)),  # own Redises
        "journal": lambda: run_async(journal_bench.run()),
        "memory": memory_bench.run,
        "gc": gc_bench.run,  # a fresh interpreter, like memory's RSS figure
        "failover": lambda: run_async(failover_bench.run()),  # its own Redis too
        "encode": lambda: run_async(encode_bench.run()),
        "slow-clients": slow_clients_bench.run,  # its own exporter process under ulimit -n 1024
        "logins": lambda: run_async(login_bench.run()),  # its own exporter process too
        "figma-cache": lambda: run_async(figma_cache_bench.run()),  # the Figma double in-process
        "fleet": fleet_bench.run,  # replica processes, this tree's and the baseline's, own Redis
        "dashboard": lambda: dashboard_bench.run(redis_url),  # exporter processes and wrk
    }


def git(*args: str) -> str | None:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        "event_loop": loop_name(),
        "redis_server": tool_version("redis-server", "--version"),
        "wrk": tool_version("wrk", "--version"),
    }


def tool_version(*command: str) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else None


def report(
    results: list[tuple[str, Result]], seconds: dict[str, float], elapsed: float, began: str
) -> dict[str, Any]:
    """The JSON document: where and when it ran, and every figure with its baseline and goal."""
    status = git("status", "--porcelain")
    return {
        "git": {
            "revision": git("rev-parse", "HEAD"),
            "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(status) if status is not None else None,
        },
        "timestamp": began,
        "machine": machine(),
        "seconds": round(elapsed, 1),
        "section_seconds": {name: round(s, 1) for name, s in seconds.items()},
        "targets": len(results),
        "met": sum(r.ok for _, r in results),
        "results": [
            {
                "section": section,
                "name": r.name,
                "value": r.value,
                "baseline": r.baseline,
                "ratio": r.ratio if r.baseline else None,
                "unit": r.unit,
                "goal": r.target,
                "ok": r.ok,
                "note": r.note,
            }
            for section, r in results
        ],
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", metavar="section", help=", ".join(SECTIONS))
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"where the results go as JSON (default {DEFAULT_JSON})",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    return args


def main(argv: list[str]) -> None:
    args = parse(argv)
    sections = args.sections or list(SECTIONS)
    python = platform.python_version()
    print(f"python {python}, event loop {loop_name()}, sections: {', '.join(sections)}")
    began = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    redis = RedisProcess()
    results: list[tuple[str, Result]] = []
    seconds: dict[str, float] = {}
    try:
        for name, run in sections_run(redis.url).items():
            if name in sections:
                section_started = time.monotonic()
                results += [(name, r) for r in run()]
                seconds[name] = time.monotonic() - section_started
    finally:
        redis.stop()
    elapsed = time.monotonic() - started
    print_table([r for _, r in results])
    met = sum(r.ok for _, r in results)
    timing = ", ".join(f"{name} {s:.0f}s" for name, s in seconds.items())
    print(f"\n{len(results)} targets, {met} met, {elapsed:.0f}s ({timing})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(report(results, seconds, elapsed, began), indent=2, ensure_ascii=False) + "\n"
    )
    print(f"results written to {args.json}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""`make bench` / `python -m bench`: every benchmark target of the session store, one table.

Each figure is a median over interleaved runs, compared with a baseline measured in the same run
(the machine is shared and noisy: absolute numbers drift, ratios hold). Misses are printed, not
hidden; the exit status is 0 either way (benchmarks are not tests).

    python -m bench            # everything, about 2 minutes
    python -m bench store      # one section: store, http, metrics, coherence, aiohttp-session,
                               # journal, memory or encode
"""

from __future__ import annotations

import asyncio
import platform
import sys
import time

from bench import (
    aiohttp_session_bench,
    coherence_bench,
    encode_bench,
    http_bench,
    journal_bench,
    memory_bench,
    metrics_bench,
    store_bench,
)
from bench.support import RedisProcess, Result

SECTIONS = (
    "store",
    "http",
    "metrics",
    "coherence",
    "aiohttp-session",
    "journal",
    "memory",
    "encode",
)


def loop_name() -> str:
    try:
        import uvloop  # noqa: F401

        return "uvloop"
    except ImportError:
        return "asyncio"


def run_async(coro):  # type: ignore[no-untyped-def]
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


def main(argv: list[str]) -> None:
    sections = argv or list(SECTIONS)
    python = platform.python_version()
    print(f"python {python}, event loop {loop_name()}, sections: {', '.join(sections)}")
    started = time.monotonic()
    redis = RedisProcess()
    results: list[Result] = []
    try:
        if "store" in sections:
            results += run_async(store_bench.run(redis.url))
        if "http" in sections:
            results += http_bench.run(redis.url)
        if "metrics" in sections:
            results += run_async(metrics_bench.run())
        if "coherence" in sections:
            results += run_async(coherence_bench.run(redis.url))
        if "aiohttp-session" in sections:
            results += aiohttp_session_bench.run()  # its own Redis: it kills it
        if "journal" in sections:
            results += run_async(journal_bench.run())
        if "memory" in sections:
            results += memory_bench.run()
        if "encode" in sections:
            results += run_async(encode_bench.run())
    finally:
        redis.stop()
    print_table(results)
    met = sum(r.ok for r in results)
    print(f"\n{len(results)} targets, {met} met, {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main(sys.argv[1:])

"""JSON encoding: msgspec vs orjson on the session GET body and on the typed report bodies.

The session GET (the hot route) answers from cached bytes and encodes nothing per request; its
body as a dict is still measured, with orjson as the baseline, to show why it stays on orjson.
The reports (exporter.monitoring.payloads Structs) are measured encoded by msgspec against orjson on
the equal dictionaries (the bytes are asserted identical first).
"""

from __future__ import annotations

import functools
import timeit
from collections.abc import Callable

import msgspec
import orjson
from prometheus_client import CollectorRegistry

from bench.support import Result, median
from exporter.core.metrics import Metrics
from exporter.core.settings import parse_settings
from exporter.monitoring import payloads
from exporter.monitoring.runtime import open_runtime

NUMBER = 2000
ROUNDS = 15


def per_call_ns(fn: Callable[[], object]) -> float:
    return min(timeit.repeat(fn, number=NUMBER, repeat=3)) / NUMBER * 1e9


def compare(
    name: str,
    candidate: Callable[[], object],
    baseline: Callable[[], object],
    target: str,
    limit: float,
) -> Result:
    values, baselines = [], []
    for _ in range(ROUNDS):  # interleaved: both see the same machine noise
        values.append(per_call_ns(candidate))
        baselines.append(per_call_ns(baseline))
    value, base = median(values), median(baselines)
    return Result(name, value, base, "ns per encode", target, value / base <= limit)


def session_body() -> dict[str, object]:
    data = {"user": "ada", "roles": ["admin", "dev"], "prefs": {"theme": "dark"}, "blob": "x" * 900}
    stamp = "2026-01-01T00:00:00.000000Z"
    return {"id": "s" * 43, "version": 3, "data": data, "created_at": stamp, "expires_at": stamp}


async def run() -> list[Result]:
    encoder = msgspec.json.Encoder()
    body = session_body()
    assert encoder.encode(body) == orjson.dumps(body)
    results = [
        compare(
            "encode: session GET body, msgspec vs orjson (orjson stays)",
            lambda: encoder.encode(body),
            lambda: orjson.dumps(body),
            "info",
            float("inf"),
        )
    ]
    async with open_runtime(parse_settings({}), Metrics(CollectorRegistry())) as runtime:
        for n in range(50):
            session = await runtime.sessions.manager.create({"n": n})
            await runtime.sessions.manager.get(session.id)
        reports = runtime.reports
        for name, typed in (
            ("performance", reports.performance()),
            ("persistence", reports.persistence()),
            ("cache-stats", reports.cache_stats()),
            ("realtime", reports.realtime()),
        ):
            plain = msgspec.to_builtins(typed)
            assert payloads.encode(typed) == orjson.dumps(plain), name
            results.append(
                compare(
                    f"encode: {name} Struct by msgspec vs its dict by orjson",
                    functools.partial(payloads.encode, typed),
                    functools.partial(orjson.dumps, plain),
                    "<= 2x",
                    2.0,
                )
            )
    return results

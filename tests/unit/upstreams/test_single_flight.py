"""Single flight: identical concurrent calls share one execution, failures and cancellations too."""

from __future__ import annotations

import asyncio
import functools

import pytest

from exporter.upstreams.single_flight import SingleFlight


async def test_ten_concurrent_calls_run_once() -> None:
    flight = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def fetch() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await gate.wait()
        return {"n": calls}

    waiters = [asyncio.create_task(flight.run("k", fetch)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiters)
    assert calls == 1
    assert results == [{"n": 1}] * 10
    assert flight.shared == 9
    assert len(flight) == 0


async def test_different_keys_do_not_share() -> None:
    flight = SingleFlight()
    seen: list[str] = []

    async def fetch(key: str) -> str:
        seen.append(key)
        await asyncio.sleep(0.01)
        return key

    results = await asyncio.gather(
        *(flight.run(k, functools.partial(fetch, k)) for k in ("a", "b", "a"))
    )
    assert results == ["a", "b", "a"]
    assert sorted(seen) == ["a", "b"]


async def test_a_failure_reaches_every_waiter_and_is_not_remembered() -> None:
    flight = SingleFlight()
    calls = 0

    async def fail() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("upstream broke")

    results = await asyncio.gather(
        *(flight.run("k", fail) for _ in range(3)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        await flight.run("k", fail)  # the next call runs again
    assert calls == 2


async def test_a_cancelled_caller_does_not_cancel_the_shared_call() -> None:
    flight = SingleFlight()
    gate = asyncio.Event()

    async def fetch() -> str:
        await gate.wait()
        return "done"

    first = asyncio.create_task(flight.run("k", fetch))
    second = asyncio.create_task(flight.run("k", fetch))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await second == "done"
    assert first.cancelled()


async def test_cancel_all_stops_calls_in_flight() -> None:
    flight = SingleFlight()

    async def forever() -> None:
        await asyncio.Event().wait()

    waiter = asyncio.create_task(flight.run("k", forever))
    await asyncio.sleep(0)
    await flight.cancel_all()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(flight) == 0

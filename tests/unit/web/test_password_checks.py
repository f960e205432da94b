"""bcrypt checks: their own thread, bounded, remembered; unknown users cost what users cost."""

from __future__ import annotations

import asyncio
import threading

import bcrypt
import pytest

from exporter.web.password_checks import ChecksBusy, PasswordChecker, dummy_hash

LONG = b"p" * 72  # bcrypt reads at most 72 bytes


@pytest.fixture(scope="module")
def hashed() -> bytes:
    return bcrypt.hashpw(LONG, bcrypt.gensalt(5))


@pytest.fixture
def checker() -> PasswordChecker:
    return PasswordChecker(max_pending=2)


def test_the_dummy_hash_has_the_users_cost_and_matches_nothing() -> None:
    users = [bcrypt.hashpw(b"a", bcrypt.gensalt(5)), bcrypt.hashpw(b"b", bcrypt.gensalt(6))]
    dummy = dummy_hash(users)
    assert dummy[:7] == b"$2b$06$" and len(dummy) == 60
    assert not bcrypt.checkpw(b"", dummy) and not bcrypt.checkpw(b"a", dummy)
    assert dummy_hash([])[:7] == b"$2b$10$"  # no users: a common cost


async def test_right_wrong_unknown_and_over_72_bytes(
    checker: PasswordChecker, hashed: bytes
) -> None:
    dummy = dummy_hash([hashed])
    assert await checker.check("u", LONG, hashed, dummy)
    assert await checker.check("u", LONG + b"anything after byte 72", hashed, dummy)  # as Go's
    assert not await checker.check("u", b"p" * 71, hashed, dummy)
    assert not await checker.check("ghost", LONG, None, dummy)  # never, even for the dummy's
    assert not await checker.check("u", b"x" * 5000, hashed, dummy)  # no ValueError
    assert not await checker.check("u", LONG, b"$2b$05$not-a-hash", dummy)
    checker.close()


async def test_checks_run_on_their_own_thread_never_the_loop_or_the_default_executor(
    checker: PasswordChecker, hashed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real = bcrypt.checkpw

    def spy(password: bytes, hashed_password: bytes) -> bool:
        threads.append(threading.current_thread().name)
        return real(password, hashed_password)

    monkeypatch.setattr(bcrypt, "checkpw", spy)
    await checker.check("u", b"wrong", hashed, dummy_hash([hashed]))
    assert len(threads) == 1 and threads[0].startswith("bcrypt")
    checker.close()


async def test_outcomes_are_remembered_and_identical_checks_share_one_run(
    checker: PasswordChecker, hashed: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[bytes] = []
    real = bcrypt.checkpw

    def counted(password: bytes, hashed_password: bytes) -> bool:
        runs.append(password)
        return real(password, hashed_password)

    monkeypatch.setattr(bcrypt, "checkpw", counted)
    dummy = dummy_hash([hashed])
    together = [checker.check("u", b"wrong", hashed, dummy) for _ in range(10)]
    assert await asyncio.gather(*together) == [False] * 10
    assert not await checker.check("u", b"wrong", hashed, dummy)
    assert await checker.check("u", LONG, hashed, dummy)
    assert await checker.check("u", LONG, hashed, dummy)
    assert len(runs) == 2
    checker.forget()  # the users changed: checked again
    assert await checker.check("u", LONG, hashed, dummy) and len(runs) == 3
    checker.close()


async def test_a_full_queue_refuses_at_once_and_closing_refuses_the_waiting(
    checker: PasswordChecker, hashed: bytes
) -> None:
    slow = bcrypt.hashpw(b"x", bcrypt.gensalt(12))  # ~250 ms a check
    dummy = dummy_hash([slow])
    waiting = [
        asyncio.create_task(checker.check("u", f"{n}".encode(), slow, dummy)) for n in (1, 2)
    ]
    await asyncio.sleep(0)
    assert checker.pending == 2
    with pytest.raises(ChecksBusy):
        await checker.check("u", b"3", slow, dummy)
    checker.close()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert any(isinstance(outcome, ChecksBusy) for outcome in outcomes)

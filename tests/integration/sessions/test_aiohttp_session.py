"""TieredStorage behind aiohttp-session, against a real redis-server: a session counter keeps
counting through a SIGKILL and restart of Redis with no error and no lost increment, and a second
app instance sees the latest value after failback; a session that can't be read during the outage
gets 503 + Retry-After, never a new session."""

from __future__ import annotations

import pytest

from tests.support.aiohttp_session import UPSTREAM_WARNING, CounterApp, serve_counter
from tests.support.redis_server import RedisServer
from tests.support.sessions import wait_for

pytestmark = pytest.mark.filterwarnings(UPSTREAM_WARNING)

COOKIE = "AIOHTTP_SESSION"
REQUESTS = 200
KILL_AT, RESTART_AT = 60, 140


async def peek_with(app: CounterApp, session_id: str) -> tuple[int, dict[str, object]]:
    """GET /peek with this session's cookie only (the client's own jar would send its own)."""
    app.client.session.cookie_jar.clear()
    response = await app.client.get("/peek", headers={"Cookie": f"{COOKIE}={session_id}"})
    return response.status, await response.json()


def recovered(app: CounterApp) -> bool:
    store = app.storage.manager.store
    return not store.fallback_active and not store.journal


async def test_counter_survives_a_redis_kill_and_a_second_instance_sees_the_latest_value(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with serve_counter(redis_url) as first, serve_counter(redis_url) as second:
        statuses: list[int] = []
        values: list[int] = []
        session_id = ""
        try:
            for step in range(1, REQUESTS + 1):
                if step == KILL_AT:
                    # The second instance holds an old copy: after failback it must not serve it.
                    assert await peek_with(second, session_id) == (
                        200,
                        {"n": step - 1, "new": False},
                    )
                    redis_server.kill()
                elif step == RESTART_AT:
                    assert first.sample("store_fallback_active") == 1
                    redis_server.start()  # empty: no persistence, only the replay restores it
                response = await first.client.get("/count")
                statuses.append(response.status)
                if response.status == 200:
                    values.append((await response.json())["n"])
                session_id = first.client.session.cookie_jar.filter_cookies(
                    first.client.make_url("/")
                )[COOKIE].value
        finally:
            redis_server.ensure_running()
        assert statuses == [200] * REQUESTS
        assert values == list(range(1, REQUESTS + 1))  # one session, no increment lost
        assert first.sample("store_failovers_total") >= 1

        await wait_for(lambda: recovered(first), 10)
        await wait_for(lambda: recovered(second), 10)
        assert await peek_with(second, session_id) == (200, {"n": REQUESTS, "new": False})
        assert first.sample("store_replayed_total") >= 1


async def test_a_session_unknown_to_memory_during_an_outage_gets_503_not_a_new_session(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with serve_counter(redis_url) as first, serve_counter(redis_url) as second:
        response = await first.client.get("/count")
        assert response.status == 200
        session_id = response.cookies[COOKIE].value
        redis_server.kill()
        try:
            response = await second.client.get(
                "/count", headers={"Cookie": f"{COOKIE}={session_id}"}
            )
            assert response.status == 503
            assert int(response.headers["Retry-After"]) >= 1
            assert COOKIE not in response.cookies  # the browser keeps its session
            body = await response.json()
            assert body["error"]["code"] in ("unavailable", "timeout")
            assert session_id not in await response.text()
            # The instance holding it keeps serving it; new visitors still get sessions.
            assert (await first.client.get("/count")).status == 200
            fresh = await second.client.get("/count")
            assert fresh.status == 200 and (await fresh.json()) == {"n": 1}
        finally:
            redis_server.ensure_running()
        await wait_for(lambda: recovered(first), 10)
        await wait_for(lambda: recovered(second), 10)
        assert await peek_with(second, session_id) == (200, {"n": 2, "new": False})
        assert second.sample("operation_errors_total", _errors("get")) >= 1


def _errors(operation: str) -> dict[str, str]:
    return {"manager": "session", "operation": operation, "error": "unavailable"}


async def test_cookie_options_pass_through_and_the_cookie_is_the_session_id() -> None:
    options = {
        "cookie_name": "sid",
        "domain": "example.test",
        "max_age": 600,
        "path": "/app",
        "secure": True,
        "httponly": True,
        "samesite": "Strict",
    }
    async with serve_counter(None, **options) as app:
        response = await app.client.get("/count")
        cookie = response.cookies["sid"]
        assert cookie["domain"] == "example.test" and cookie["path"] == "/app"
        assert cookie["max-age"] == "600" and cookie["samesite"] == "Strict"
        assert cookie["secure"] and cookie["httponly"]
        session = await app.storage.manager.get(cookie.value)
        assert session.data["session"] == {"n": 1}
        assert 590 < session.expires_at - session.created_at <= 600  # the store TTL is max_age


async def test_only_a_changed_session_is_written_and_logout_deletes_it() -> None:
    async with serve_counter(None) as app:
        assert (await app.client.get("/count")).status == 200
        assert app.sample("sessions_created_total") == 1
        for _ in range(5):  # read-only and changed()-without-change requests write nothing
            assert (await app.client.get("/peek")).status == 200
            assert (await app.client.get("/touch")).status == 200
        assert app.sample("sessions_updated_total") == 0
        assert (await (await app.client.get("/count")).json()) == {"n": 2}
        assert app.sample("sessions_updated_total") == 1

        response = await app.client.get("/logout")
        assert response.cookies[COOKIE].value == ""  # deleted
        assert app.sample("sessions_deleted_total") == 1
        assert await (await app.client.get("/peek")).json() == {"n": None, "new": True}


async def test_an_unknown_or_malformed_cookie_starts_a_new_session() -> None:
    async with serve_counter(None) as app:
        for cookie in ("no-such-session", "{bad}", "x" * 300):
            response = await app.client.get("/count", headers={"Cookie": f"{COOKIE}={cookie}"})
            assert response.status == 200 and await response.json() == {"n": 1}
            assert response.cookies[COOKIE].value != cookie
            app.client.session.cookie_jar.clear()


async def test_a_storage_used_before_start_says_how_to_start_it() -> None:
    from exporter.library.aiohttp_session import TieredStorage

    with pytest.raises(RuntimeError, match="cleanup_ctx"):
        _ = TieredStorage().manager

"""TieredStorage where it goes beyond aiohttp-session's own tests, on a real redis-server: values
it cannot read, `key_factory`, `encoder`/`decoder`, a patched `time.time`, and its defaults."""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import json
import logging
import re
import time
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp_session
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from exporter.core.errors import ConfigError, SessionNotFound, error_kind
from exporter.core.settings import Settings
from exporter.library import api
from exporter.library.aiohttp_session import TieredStorage
from tests.support.aiohttp_session import UPSTREAM_WARNING, counter_app, serve_counter
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.filterwarnings(UPSTREAM_WARNING)

COOKIE = "AIOHTTP_SESSION"
DOCS = Path(__file__).parents[3] / "docs" / "library.md"
# One value per cause: not our header, our header before bytes that are not JSON, JSON that is
# not our document (what RedisStorage writes).
UNREADABLE = {
    "header": [b"", b"garbage", b'{"created": 1, "session": {"a": 1}}'],
    "json": [b"1:99999999999999:s{not json"],
    "shape": [b'1:99999999999999:s{"created": 1, "session": {"a": 1}}'],
}


async def test_an_unreadable_value_is_no_session_counted_and_logged_once_per_cause(
    redis_server: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.sessions.manager")  # whatever root's is
    client = redis_server.client()
    async with serve_counter(redis_url) as app:
        for cause, values in UNREADABLE.items():
            for n, raw in enumerate(values * 2):  # each twice: logged once, counted each time
                session_id = f"bad{cause}{n}"
                client.set(f"sme:s:{{{session_id}}}", raw)
                app.client.session.cookie_jar.clear()
                response = await app.client.get(
                    "/count", headers={"Cookie": f"{COOKIE}={session_id}"}
                )
                assert response.status == 200 and await response.json() == {"n": 1}
                assert response.cookies[COOKIE].value not in ("", session_id)  # a new session
                assert client.get(f"sme:s:{{{session_id}}}") == raw  # not ours to delete
            counted = app.sample("sessions_unreadable_total", {"cause": cause})
            assert counted == 2 * len(values)
    client.close()
    logged = [r for r in caplog.records if "unreadable stored value" in r.getMessage()]
    assert sorted(r.getMessage().split("(")[1].split(")")[0] for r in logged) == sorted(UNREADABLE)
    assert not any("bad" in record.getMessage() for record in logged)  # ids are credentials


async def test_key_factory_names_new_sessions(redis_server: RedisServer, redis_url: str) -> None:
    ids = iter(["first-id", "second_id"])
    async with serve_counter(redis_url, key_factory=lambda: next(ids, "later")) as app:
        # the first id is drawn at construction, to check the factory
        response = await app.client.get("/count")
        assert response.cookies[COOKIE].value == "second_id"
        assert (await app.client.get("/count")).status == 200  # the same session, updated
    client = redis_server.client()
    assert client.exists("sme:s:{second_id}") and not client.exists("sme:s:{first-id}")
    client.close()


@pytest.mark.parametrize(
    ("made", "problem"),
    [("a{b}", "str of 4 characters"), ("x" * 129, "str of 129"), (42, "int, not a str")],
)
def test_a_key_factory_making_bad_ids_is_refused_at_construction(made: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match="key_factory") as error:
        TieredStorage(key_factory=lambda: made)
    assert problem in str(error.value)
    assert str(made) not in str(error.value)  # an id is a credential: never echoed


async def test_a_key_factory_going_bad_later_gets_a_clear_500_and_stores_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="exporter.library.aiohttp_session")
    ids = iter(["fine"])
    async with serve_counter(None, key_factory=lambda: next(ids, "{bad}")) as app:
        response = await app.client.get("/count")
        assert response.status == 500
        assert (await response.json())["error"]["code"] == "invalid_session_id"
        assert COOKIE not in response.cookies
        assert app.sample("sessions_created_total") == 0
    assert any("key_factory returned" in record.getMessage() for record in caplog.records)
    assert not any("{bad}" in record.getMessage() for record in caplog.records)


def _encode(data: object) -> str:
    return json.dumps(data, default=lambda value: {"$date": value.isoformat()})


def _decode(text: str) -> Any:
    def revive(item: dict[str, Any]) -> Any:
        return datetime.date.fromisoformat(item["$date"]) if "$date" in item else item

    return json.loads(text, object_hook=revive)


async def remember(request: web.Request) -> web.Response:
    session = await aiohttp_session.get_session(request)
    session.setdefault("since", datetime.date(2024, 2, 29))
    return web.json_response({"type": type(session["since"]).__name__})


async def test_encoder_and_decoder_carry_types_json_has_not(redis_url: str) -> None:
    storage = TieredStorage(redis_url, encoder=_encode, decoder=_decode)
    app = counter_app(storage)
    app.router.add_get("/remember", remember)
    async with TestClient(TestServer(app)) as client:
        first = await client.get("/remember")  # written through the encoder
        assert await first.json() == {"type": "date"}
        again = await client.get("/remember")  # read back through the decoder
        assert await again.json() == {"type": "date"}
        held = await storage.manager.get(first.cookies[COOKIE].value)
        assert held.data["session"]["since"] == {"$date": "2024-02-29"}


async def test_an_encoder_not_making_json_gets_a_clear_500() -> None:
    async with serve_counter(None, encoder=lambda data: "not json") as app:
        response = await app.client.get("/count")
        assert response.status == 500
        assert (await response.json())["error"]["code"] == "invalid_session_data"


async def test_a_patched_time_moves_the_max_age_check_but_not_the_store_expiry(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with serve_counter(redis_url, max_age=600) as app:
        session_id = (await app.client.get("/count")).cookies[COOKIE].value

        async def count() -> Any:
            app.client.session.cookie_jar.clear()  # the cookie as sent, whatever its `expires`
            response = await app.client.get("/count", headers={"Cookie": f"{COOKIE}={session_id}"})
            return await response.json()

        real = time.time()
        with mock.patch("time.time", return_value=real - 86_400):  # a day back: still served
            assert await count() == {"n": 2}
        client = redis_server.client()
        assert 590 < client.ttl(f"sme:s:{{{session_id}}}") <= 600  # Redis's clock, not ours
        client.close()
        with mock.patch("time.time", return_value=real + 3600):  # past max_age: emptied
            assert await count() == {"n": 1}


def test_store_defaults_are_the_settings_declarations() -> None:
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    fields = {**api._FIELDS, "journal_dir": "journal_dir"}
    for function in (api.open_session_manager, api.open_store, TieredStorage.__init__):
        for name, parameter in inspect.signature(function).parameters.items():
            if name == "ttl" and function is TieredStorage.__init__:
                continue  # its own: a browser-session cookie's lifetime (BROWSER_SESSION_TTL)
            if name in fields:
                assert parameter.default == defaults[fields[name]], (function.__qualname__, name)


def test_the_documented_defaults_are_the_settings_declarations() -> None:
    """docs/library.md's argument table, against the signature it describes."""
    rows = re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", DOCS.read_text(), re.MULTILINE)
    documented = {name: shown.replace('"', "'") for name, shown in rows}
    signature = inspect.signature(api.open_session_manager).parameters
    assert set(documented) == set(signature)
    for name, parameter in signature.items():
        assert documented[name] == repr(parameter.default), name


async def test_the_manager_answers_an_unreadable_session_as_unknown(
    redis_server: RedisServer, redis_url: str
) -> None:
    """What the service's JSON API does with it: 404, as for any unknown session."""
    client = redis_server.client()
    client.set("sme:s:{damaged}", b"1:99999999999999:s{not json")
    client.close()
    async with api.open_session_manager(redis_url) as manager:
        for operation in (manager.get("damaged"), manager.update("damaged", {"a": 1})):
            with pytest.raises(SessionNotFound) as error:
                await operation
            assert error_kind(error.value).status == 404

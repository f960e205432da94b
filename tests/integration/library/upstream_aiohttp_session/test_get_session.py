"""aiohttp-session 2.12.1 tests/test_get_session.py: its own `get_session`/`new_session`, with
TieredStorage where a test needs a working storage (`PORT:`); the others use deliberately
broken storages and run unchanged."""

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiohttp_session import (
    SESSION_KEY,
    STORAGE_KEY,
    AbstractStorage,
    Session,
    get_session,
    new_session,
)

from .typedefs import UPSTREAM_WARNING, tiered_here

pytestmark = pytest.mark.filterwarnings(UPSTREAM_WARNING)  # PORT: aiohttp 3.14's warning


async def test_get_stored_session() -> None:
    req = make_mocked_request("GET", "/")
    session = Session("identity", data=None, new=False)
    req[SESSION_KEY] = session

    ret = await get_session(req)
    assert session is ret


async def test_session_is_not_stored() -> None:
    req = make_mocked_request("GET", "/")

    with pytest.raises(RuntimeError):
        await get_session(req)


async def test_storage_returns_not_session_on_load_session() -> None:
    req = make_mocked_request("GET", "/")

    class Storage:
        async def load_session(self, request: web.Request) -> None:
            return None

    req[STORAGE_KEY] = Storage()

    with pytest.raises(RuntimeError):
        await get_session(req)


async def test_get_new_session() -> None:
    req = make_mocked_request("GET", "/")
    session = Session("identity", data=None, new=False)

    req[SESSION_KEY] = session
    req[STORAGE_KEY] = tiered_here()  # PORT: TieredStorage where a dummy storage was

    ret = await new_session(req)
    assert ret is not session
    assert ret.new and ret.identity is None  # PORT: and what it returns is a new session


async def test_get_new_session_no_storage() -> None:
    req = make_mocked_request("GET", "/")
    session = Session("identity", data=None, new=False)
    req[SESSION_KEY] = session

    with pytest.raises(RuntimeError):
        await new_session(req)


async def test_get_new_session_bad_return() -> None:
    req = make_mocked_request("GET", "/")

    class Storage(AbstractStorage):
        async def new_session(self) -> Session:
            return ""  # type: ignore[return-value]

        async def load_session(self, request: web.Request) -> Session:  # type: ignore[empty-body]
            """Dummy"""

        async def save_session(
            self, request: web.Request, response: web.StreamResponse, session: Session
        ) -> None:
            """Dummy"""

    req[STORAGE_KEY] = Storage()

    with pytest.raises(RuntimeError):
        await new_session(req)

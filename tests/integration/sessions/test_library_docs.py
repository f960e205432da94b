"""docs/library.md's examples, run as written against a real redis-server: each ```python block
is executed as a module (not as __main__); a `main()` is awaited, a `create_app()` is served and
requested the way the text describes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.support.aiohttp_session import UPSTREAM_WARNING

pytestmark = pytest.mark.filterwarnings(UPSTREAM_WARNING)

DOC = Path(__file__).parents[3] / "docs" / "library.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def examples() -> list[str]:
    return BLOCK.findall(DOC.read_text())


def run_block(code: str, index: int) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"docs_library_example_{index}"}
    exec(compile(code, f"{DOC}:block{index}", "exec"), namespace)
    return namespace


async def check_manager(namespace: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    await namespace["main"]()
    assert capsys.readouterr().out == "deleted\n"


async def check_outage_handler(client: TestClient[Any, Any]) -> None:
    login = await client.post("/login/ada")
    session_id = (await login.json())["id"]
    assert await (await client.get(f"/whoami/{session_id}")).json() == {"user": "ada"}
    assert (await client.get("/whoami/nobody")).status == 404


async def check_aiohttp_session(client: TestClient[Any, Any]) -> None:
    assert await (await client.get("/")).json() == {"visits": 1}
    response = await client.get("/")
    assert await response.json() == {"visits": 2}
    assert response.cookies["AIOHTTP_SESSION"]["samesite"] == "Lax"
    text = await (await client.get("/metrics")).text()
    assert "session_exporter_sessions_created_total 1.0" in text


def test_the_doc_has_the_examples_this_test_checks() -> None:
    assert len(examples()) == 3


async def test_the_examples_run(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    manager, handler, session = (run_block(code, i) for i, code in enumerate(examples()))
    await check_manager(manager, capsys)
    for namespace, check in ((handler, check_outage_handler), (session, check_aiohttp_session)):
        client = TestClient(TestServer(namespace["create_app"]()))
        await client.start_server()
        try:
            await check(client)
        finally:
            await client.close()

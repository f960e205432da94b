"""The library API: a store and a SessionManager opened from plain arguments on a real Redis,
with the metrics on the registry passed in."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import exporter
from exporter import SessionNotFound, open_session_manager, open_store
from exporter.core.errors import ConfigError
from exporter.core.settings import Settings
from exporter.library import api as library
from tests.support.redis_server import RedisServer


async def test_two_managers_on_one_redis_share_sessions_and_count_on_their_registries(
    redis_url: str,
) -> None:
    first_registry, second_registry = CollectorRegistry(), CollectorRegistry()
    async with (
        open_session_manager(redis_url, ttl=60, registry=first_registry) as first,
        open_session_manager(redis_url, registry=second_registry) as second,
    ):
        session = await first.create({"user": "ada"})
        assert 59 < session.expires_at - session.created_at <= 60
        assert (await second.get(session.id)).data == {"user": "ada"}
        await second.update(session.id, {"user": "grace"})
        await second.delete(session.id)
        with pytest.raises(SessionNotFound):
            await first.get(session.id)
    sample = first_registry.get_sample_value
    assert sample("session_exporter_sessions_created_total") == 1
    assert second_registry.get_sample_value("session_exporter_sessions_updated_total") == 1


async def test_open_store_keeps_bytes_under_the_key_prefix(
    redis_server: RedisServer, redis_url: str
) -> None:
    async with open_store(redis_url, key_prefix="app:") as store:
        await store.set("cart:{ada}", b"[1, 2]", ttl=60)
        held = await store.get("cart:{ada}")
        assert held is not None and held.payload == b"[1, 2]"
    client = redis_server.client()
    assert client.exists("app:cart:{ada}") == 1
    client.close()


async def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(ConfigError, match="ttl"):
        async with open_session_manager(ttl=-1):
            pass
    with pytest.raises(ConfigError, match="redis_url") as error:
        async with open_session_manager("http://user:secret@localhost"):
            pass
    assert "secret" not in str(error.value)


async def test_writes_during_an_outage_outlive_the_manager_in_its_journal_dir(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    redis_server.kill()
    try:
        async with open_session_manager(redis_url, journal_dir=tmp_path) as manager:
            session = await manager.create({"during": "outage"})  # journalled on disk
            with pytest.raises(
                ConfigError, match="in use by another process"
            ):  # one process per directory
                async with open_session_manager(redis_url, journal_dir=tmp_path):
                    pass
    finally:
        redis_server.start()
    async with open_session_manager(redis_url, journal_dir=tmp_path) as manager:
        await manager.store.recover_now()  # the previous run's journal, replayed
        await manager.store.clear_memory()
        assert (await manager.get(session.id)).data == {"during": "outage"}


def test_defaults_are_the_service_defaults() -> None:
    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    for function in (library.open_session_manager, library.open_store):
        for name, parameter in inspect.signature(function).parameters.items():
            field = library._FIELDS.get(name)
            if field is not None:
                assert parameter.default == defaults[field], (function.__name__, name)


def test_the_package_exports_the_api() -> None:
    for name in exporter.__all__:
        assert getattr(exporter, name) is not None

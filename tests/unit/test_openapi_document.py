"""docs/openapi.json is the document the app serves; the derived schemas match the payload types,
which encode as the dictionaries did."""

from __future__ import annotations

import json

import msgspec
import orjson
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry

from exporter import payloads
from exporter.config import parse_settings
from exporter.metrics import Metrics
from exporter.runtime import open_runtime
from exporter.web import openapi

REGENERATE = "python -c 'from exporter.web.openapi import write_committed; write_committed()'"


def test_committed_document_has_not_drifted() -> None:
    committed = openapi.COMMITTED.read_text(encoding="utf-8")
    assert committed == openapi.rendered(), f"docs/openapi.json is stale; run {REGENERATE}"


def test_report_components_come_from_the_payload_types() -> None:
    schemas = openapi.document()["components"]["schemas"]
    derived = payloads.schema_components()
    for name, schema in derived.items():
        assert schemas[name] == schema, name
        Draft202012Validator.check_schema(schema)
    # Every reference a derived schema makes resolves inside the document.
    refs = {
        ref.rsplit("/", 1)[1] for ref in _refs(derived) if ref.startswith("#/components/schemas/")
    }
    assert refs <= set(schemas), refs - set(schemas)
    assert json.dumps(schemas)  # serialisable as served


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


async def test_typed_bodies_encode_as_orjson_encodes_their_values() -> None:
    """msgspec on a Struct writes the bytes orjson writes for the same values as dictionaries
    (what the routes answered before the bodies were typed), keys in the same order."""
    metrics = Metrics(CollectorRegistry())
    async with open_runtime(parse_settings({}), metrics) as runtime:
        session = await runtime.sessions.manager.create({"user": "ada"})
        await runtime.sessions.manager.get(session.id)
        bodies = [
            runtime.reports.performance(),
            runtime.reports.persistence(),
            runtime.reports.cache_stats(),
            runtime.service.health(),
            await runtime.service.clear_cache("memory"),
            await runtime.service.clear_cache("all"),
        ]
    for body in bodies:
        assert payloads.encode(body) == orjson.dumps(msgspec.to_builtins(body)), type(body)
    assert list(msgspec.to_builtins(bodies[-1])["cleared"]) == ["figma_responses", "memory_entries"]
    assert list(msgspec.to_builtins(bodies[-2])["cleared"]) == ["memory_entries"]


async def test_session_bytes_fit_the_session_type() -> None:
    """The session answers stay orjson's cached bytes (the hot GET path); they decode into the
    Struct the document's `Session` schema comes from."""
    metrics = Metrics(CollectorRegistry())
    async with open_runtime(parse_settings({}), metrics) as runtime:
        session = await runtime.sessions.manager.create({"user": "ada", "n": [1, 2.5]})
    body = msgspec.json.decode(session.json_bytes(), type=payloads.Session)
    assert body.id == session.id and body.data == {"user": "ada", "n": [1, 2.5]}
    assert payloads.encode(body) == session.json_bytes()


def test_small_typed_answers_encode_as_their_dictionaries_did() -> None:
    access = {"reads": 1, "writes": 1, "cache": {"hit_ratio": None}, "max_ms": 0.5}
    shot = {
        "node_id": "1:2",
        "source": "api",
        "content_type": "image/png",
        "size_bytes": 2048,
        "sha256": "ab" * 32,
        "cached": False,
        "duration_ms": 1.25,
    }
    pairs = [
        (
            payloads.SessionAccess(id="s", access=access, figma=None),
            {
                "id": "s",
                "access": access,
                "figma": None,
            },
        ),
        (payloads.Screenshot(**shot), shot),  # type: ignore[arg-type]
        (payloads.Status(status="ok"), {"status": "ok"}),
    ]
    for typed, plain in pairs:
        assert payloads.encode(typed) == orjson.dumps(plain), type(typed)

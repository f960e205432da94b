"""docs/openapi.json is the document the app serves, and the derived schemas match the types."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator

from exporter import payloads
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

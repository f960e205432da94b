"""Figma's official OpenAPI spec (npm `@figma/rest-api-spec`) as a checker of requests and
responses: which paths exist, which query parameters each takes (names, types, required), and
the JSON schema of each response status. Schemas are checked with jsonschema (the spec is
OpenAPI 3.1, whose schemas are JSON Schema 2020-12); `$ref`s resolve within the spec. A `oneOf`
with an OpenAPI `discriminator` (Figma's node and effect types) is checked as the discriminator
means it: the `type` picks the one schema, instead of trying all thirty for every node.

    spec = FigmaSpec.load(path)
    spec.request_errors("GET", "/v1/files/ABC", {"depth": "2"})        # [] when valid
    spec.response_errors("GET", "/v1/files/ABC", 200, body)            # [] when valid
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE_URI = "urn:figma-rest-api-spec"
ERROR_LIMIT = 5


@dataclass(frozen=True)
class Operation:
    template: str
    pattern: re.Pattern[str]
    parameters: tuple[dict[str, Any], ...]
    responses: dict[str, Any]


class FigmaSpec:
    def __init__(self, document: dict[str, Any]) -> None:
        document = _discriminated(document)
        self.document = document
        self.version = str(document["info"]["version"])
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(BASE_URI, resource)
        self._operations = [
            _operation(template, item["get"])
            for template, item in document["paths"].items()
            if "get" in item
        ]

    @classmethod
    @functools.cache
    def load(cls, path: Path) -> FigmaSpec:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with path.open() as file:
            return cls(yaml.load(file, Loader=loader))

    def operation(self, method: str, path: str) -> Operation | None:
        if method != "GET":
            return None
        for operation in self._operations:
            if operation.pattern.fullmatch(path):
                return operation
        return None

    def request_errors(self, method: str, path: str, query: dict[str, str]) -> list[str]:
        operation = self.operation(method, path)
        if operation is None:
            return [f"{method} {path}: no such operation in the spec"]
        errors: list[str] = []
        declared = {p["name"]: p for p in operation.parameters if p.get("in") == "query"}
        for name in query:
            if name not in declared:
                errors.append(f"{operation.template}: query parameter {name!r} is not declared")
        for name, parameter in declared.items():
            if name not in query:
                if parameter.get("required"):
                    errors.append(f"{operation.template}: required {name!r} missing")
                continue
            value = _coerce(query[name], parameter.get("schema", {}))
            errors += self._errors(parameter.get("schema", {}), value, f"query {name}")
        return errors

    def response_errors(self, method: str, path: str, status: int, body: Any) -> list[str]:
        operation = self.operation(method, path)
        if operation is None:
            return [f"{method} {path}: no such operation in the spec"]
        response = operation.responses.get(str(status))
        if response is None:
            return [f"{operation.template}: status {status} is not documented"]
        # The schema by its JSON pointer in the spec, so its own `#/components/...` refs resolve.
        if "$ref" in response:
            pointer = response["$ref"]
        else:
            escaped = operation.template.replace("~", "~0").replace("/", "~1")
            pointer = f"#/paths/{escaped}/get/responses/{status}"
        schema = {"$ref": f"{BASE_URI}{pointer}/content/application~1json/schema"}
        return self._errors(schema, body, f"{operation.template} {status}")

    def _errors(self, schema: dict[str, Any], value: Any, where: str) -> list[str]:
        validator = Draft202012Validator(schema, registry=self._registry)
        found = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        return [
            f"{where}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
            for e in found[:ERROR_LIMIT]
        ]


def _discriminated(node: Any) -> Any:
    """The spec with each discriminated `oneOf` as if/then on the discriminator property."""
    if isinstance(node, list):
        return [_discriminated(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _discriminated(value) for key, value in node.items()}
    discriminator = node.get("discriminator")
    if isinstance(discriminator, dict) and "mapping" in discriminator and "oneOf" in node:
        prop, mapping = discriminator["propertyName"], discriminator["mapping"]
        del node["oneOf"]
        node["required"] = sorted({*node.get("required", ()), prop})
        node["properties"] = {**node.get("properties", {}), prop: {"enum": list(mapping)}}
        node["allOf"] = [
            *node.get("allOf", ()),
            *(
                {"if": {"properties": {prop: {"const": value}}}, "then": {"$ref": ref}}
                for value, ref in mapping.items()
            ),
        ]
    return node


def _operation(template: str, get: dict[str, Any]) -> Operation:
    regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
    return Operation(
        template,
        re.compile(regex),
        tuple(get.get("parameters", ())),
        dict(get.get("responses", {})),
    )


def _coerce(raw: str, schema: dict[str, Any]) -> Any:
    """A query string value as the schema's type (a string that does not convert stays one, so
    the check reports it)."""
    kind = schema.get("type")
    try:
        if kind == "number":
            return float(raw)
        if kind == "integer":
            return int(raw)
    except ValueError:
        return raw
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    return raw

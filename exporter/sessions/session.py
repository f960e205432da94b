"""The Session value and its encodings (the stored document, the API's JSON).

>>> session = Session("abc", {"user": "ada"}, created_at=0.0, expires_at=60.0)
>>> session.as_json()["expires_at"]
'1970-01-01T00:01:00.000Z'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from exporter.core.acyclic import untrack
from exporter.core.errors import UnreadableValue
from exporter.store.contract import right_sized

# Session keys: `s:{id}` (the generic key/value API's other namespaces use other prefixes).
NAMESPACE = "s:"
# secrets.token_urlsafe alphabet; anything else cannot be one of our ids (and must not reach a
# Redis key, where `{` or `}` would break the hash tag).
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
# The document's fixed parts around `data`, as orjson writes them (ours, or older replicas').
_NUMBER = rb"-?[0-9.eE+-]+"
_DOC_HEAD = re.compile(rb'\{"created_at":' + _NUMBER + rb',"expires_at":' + _NUMBER + rb',"data":')
_DOC_TAIL = re.compile(rb',"created_at":' + _NUMBER + rb',"expires_at":' + _NUMBER + rb"\}\Z")


def session_key(session_id: str) -> str:
    """`s:{id}`: the hash tag keeps every key of one session in one Redis Cluster slot."""
    return NAMESPACE + "{" + session_id + "}"


class Session:
    """One session. Instances held by the memory tier are shared: treat them as read-only.

    Once encoded (`to_document`, which every stored session goes through) the document is the
    only copy kept: `data` decodes it on access and `json_bytes` splices the API body out of it
    without re-encoding. Keeping the decoded dict and a second encoding besides cost a 1 KiB
    session about 3 KiB of memory more."""

    __slots__ = ("_data", "_doc", "_stamps", "created_at", "expires_at", "id", "version")

    def __init__(
        self,
        id: str,
        data: dict[str, Any],
        created_at: float,
        expires_at: float,
        version: int = 0,
    ) -> None:
        self.id = id
        self._data: dict[str, Any] | None = data
        self.created_at = created_at
        self.expires_at = expires_at
        self.version = version
        self._doc: bytes | None = None
        self._stamps: bytes | None = None
        untrack(self)  # it refers to no object that could refer back: see sessions.acyclic

    @property
    def data(self) -> dict[str, Any]:
        """The session's data (decoded anew from the document on each access, once stored)."""
        if self._data is not None:
            return self._data
        assert self._doc is not None
        data: dict[str, Any] = orjson.loads(self._doc)["data"]
        return data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Session):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable (version), like the dataclass it was

    def __repr__(self) -> str:
        return "Session(id={!r}, data={!r}, created_at={!r}, expires_at={!r}, version={!r})".format(
            *self._fields()
        )

    def _fields(self) -> tuple[str, dict[str, Any], float, float, int]:
        return self.id, self.data, self.created_at, self.expires_at, self.version

    def as_json(self) -> dict[str, Any]:
        """The API shape: `{"id", "data", "created_at", "expires_at"}`, timestamps RFC 3339 UTC."""
        return {
            "id": self.id,
            "data": self.data,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
        }

    def json_bytes(self) -> bytes:
        """`as_json()` serialised, byte for byte as orjson would, from the stored encoding (the
        formatted timestamps, 100 bytes, are kept: formatting them is most of the cost)."""
        if self._stamps is None:
            self._stamps = b',"created_at":"%s","expires_at":"%s"}' % (
                rfc3339(self.created_at).encode(),
                rfc3339(self.expires_at).encode(),
            )
        # a valid id needs no JSON escaping
        return b'{"id":"%s","data":%s%s' % (self.id.encode(), self._data_json(), self._stamps)

    def to_document(self) -> bytes:
        """What the store keeps (the id is in the key, the version in the value header); from
        here on the session holds this encoding instead of its decoded data."""
        if self._doc is None:
            self._doc = right_sized(
                orjson.dumps(
                    {
                        "created_at": self.created_at,
                        "expires_at": self.expires_at,
                        "data": self._data,
                    }
                )
            )
            self._data = None
        return self._doc

    def _data_json(self) -> bytes:
        """`data` as JSON: cut out of the document (either key order), else encoded."""
        doc = self._doc
        if doc is not None:
            head = _DOC_HEAD.match(doc)
            if head is not None and doc.endswith(b"}"):
                return doc[head.end() : -1]
            tail = _DOC_TAIL.search(doc) if doc.startswith(b'{"data":') else None  # older order
            if tail is not None:
                return doc[8 : tail.start()]
        return orjson.dumps(self.data)

    @classmethod
    def from_document(cls, session_id: str, payload: bytes, version: int) -> Session:
        """The session stored as `payload`; UnreadableValue if it is not one of our documents."""
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UnreadableValue("json", "not JSON") from None
        if not _is_document(doc):
            raise UnreadableValue("shape", "not a session document")
        session = cls(session_id, doc["data"], doc["created_at"], doc["expires_at"], version)
        if doc.keys() == {"data", "created_at", "expires_at"}:
            session._doc, session._data = payload, None  # the payload is the one copy kept
        return session


def _is_document(doc: Any) -> bool:
    """Whether decoded JSON has the shape `to_document` writes (another program's JSON, such as
    aiohttp-session's RedisStorage `{"created", "session"}`, has not)."""
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("data"), dict)
        and all(_is_number(doc.get(stamp)) for stamp in ("created_at", "expires_at"))
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def rfc3339(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def valid_id(session_id: str) -> bool:
    return ID_PATTERN.fullmatch(session_id) is not None

"""The Session value and its encodings (the stored document, the API's JSON).

>>> session = Session("abc", {"user": "ada"}, created_at=0.0, expires_at=60.0)
>>> session.as_json()["expires_at"]
'1970-01-01T00:01:00.000Z'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

# secrets.token_urlsafe alphabet; anything else cannot be one of our ids (and must not reach a
# Redis key, where `{` or `}` would break the hash tag).
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(slots=True)
class Session:
    """One session. Instances held by the memory tier are shared: treat them as read-only."""

    id: str
    data: dict[str, Any]
    created_at: float
    expires_at: float
    version: int = 0
    _json: bytes | None = field(default=None, repr=False, compare=False)

    def as_json(self) -> dict[str, Any]:
        """The API shape: `{"id", "data", "created_at", "expires_at"}`, timestamps RFC 3339 UTC."""
        return {
            "id": self.id,
            "data": self.data,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
        }

    def json_bytes(self) -> bytes:
        """`as_json()` serialised once and kept, so memory hits serve bytes without re-encoding."""
        if self._json is None:
            self._json = orjson.dumps(self.as_json())
        return self._json

    def to_document(self) -> bytes:
        """What the store keeps (the id is in the key, the version in the value header)."""
        return orjson.dumps(
            {"data": self.data, "created_at": self.created_at, "expires_at": self.expires_at}
        )

    @classmethod
    def from_document(cls, session_id: str, payload: bytes, version: int) -> Session:
        doc = orjson.loads(payload)
        return cls(session_id, doc["data"], doc["created_at"], doc["expires_at"], version)


def rfc3339(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def valid_id(session_id: str) -> bool:
    return ID_PATTERN.fullmatch(session_id) is not None

"""The data-plane routes' JSON bodies as msgspec Structs: sessions (`/api/sessions`) and Figma
screenshots (`/api/figma/screenshots`). Request bodies are decoded into them
(`exporter.web.responses.read_body`), and the OpenAPI document takes their schemas from them, as
for the monitoring payloads (`exporter.monitoring.payloads`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from exporter.sessions.manager import MAX_TTL
from exporter.sessions.session import ID_PATTERN
from exporter.upstreams.figma_manager import FILE_KEY, NODE_ID, SCALE_RANGE

# ---- sessions -----------------------------------------------------------------------------------

# `data` stays raw here and is parsed by orjson, as the stored document always was: msgspec would
# keep an integer over 64 bits exact, which the session encoder (orjson) then refuses.
SessionData = Annotated[
    msgspec.Raw, Meta(extra_json_schema={"type": "object", "description": "any JSON object"})
]
Ttl = Annotated[float, Meta(gt=0, le=MAX_TTL, description="seconds; the default is --session-ttl")]


class SessionCreate(Struct):
    """POST /api/sessions: both fields optional (`data` defaults to {})."""

    data: SessionData | UnsetType = UNSET
    ttl_seconds: Ttl | None = None


class SessionUpdate(Struct):
    """PUT /api/sessions/{id}: `data` replaces the session's data."""

    data: SessionData
    ttl_seconds: Ttl | None = None


class Session(Struct):
    """A session as the API returns it. Encoded from the session's cached orjson bytes
    (`Session.json_bytes()`, the hot GET path), never through this Struct; a test decodes real
    answers into it."""

    id: Annotated[str, Meta(pattern=f"^{ID_PATTERN.pattern}$")]
    data: dict[str, Any]
    created_at: Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
    expires_at: Annotated[str, Meta(extra_json_schema={"format": "date-time"})]


class SessionAccess(Struct):
    """GET /api/sessions/{id}/metrics."""

    id: str
    access: Annotated[
        dict[str, Any] | None,
        Meta(description="this replica's reads and writes of the session (null: none yet)"),
    ]
    figma: Annotated[
        dict[str, Any] | None,
        Meta(description="Figma calls attributed to the session (null: none yet)"),
    ]
    scope: Annotated[
        Literal["replica", "fleet"],
        Meta(description="replica: `access` counts this replica's; fleet: every replica's"),
    ] = "replica"


# ---- Figma --------------------------------------------------------------------------------------


SessionId = Annotated[str, Meta(min_length=1, description="attribute the request to a session")]


class ScreenshotRequest(Struct):
    """POST /api/figma/screenshots. `source: mcp` takes `format: png` only (checked by the
    manager: a rule across two fields)."""

    file_key: Annotated[str, Meta(pattern=f"^{FILE_KEY.pattern}$")]
    # The pattern is documented, not enforced here: the route's check names the bad value and
    # turns URL-style 1-2 into 1:2.
    node_id: Annotated[
        str, Meta(extra_json_schema={"pattern": f"^{NODE_ID.pattern}$", "maxLength": 256})
    ]
    source: Literal["api", "mcp"] = "api"
    format: Literal["png", "jpg", "svg", "pdf"] = "png"
    scale: Annotated[float, Meta(ge=SCALE_RANGE[0], le=SCALE_RANGE[1])] = 1.0
    session: SessionId | None = None


class Screenshot(Struct):
    """A screenshot's summary (POST /api/figma/screenshots without ?download=1)."""

    node_id: str
    source: Literal["api", "mcp"]
    content_type: str
    size_bytes: int
    sha256: str
    cached: bool
    duration_ms: float

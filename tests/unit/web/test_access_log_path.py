"""The access log's path: never a session id (a bearer credential), a digest of it instead."""

from __future__ import annotations

import hashlib

from exporter.web.server import loggable_path


def test_session_ids_are_replaced_by_a_digest() -> None:
    digest = hashlib.sha256(b"Zx8f_id").hexdigest()[:12]
    assert loggable_path("/api/sessions/Zx8f_id") == f"/api/sessions/sha256:{digest}"
    assert (
        loggable_path("/api/sessions/Zx8f_id/metrics") == f"/api/sessions/sha256:{digest}/metrics"
    )


def test_other_paths_are_kept() -> None:
    for path in ("/api/sessions", "/api/sessions/", "/metrics", "/api/figma/files/KEY", "/"):
        assert loggable_path(path) == path

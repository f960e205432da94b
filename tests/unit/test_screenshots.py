"""The committed dashboard screenshots (docs/screenshots/) were taken of the dashboard as it is.

The pictures show live numbers and times, so they are not compared pixel by pixel: their
manifest records the SHA-256 of the dashboard files they were taken of, and this test fails when
those files change without `make screenshots` being run again.
"""

from __future__ import annotations

import json
from pathlib import Path

from scripts.screenshots import OUT, SHOTS, asset_hashes


def test_the_screenshots_were_taken_of_the_current_dashboard_files() -> None:
    manifest = json.loads((OUT / "manifest.json").read_text())
    assert manifest["assets"] == asset_hashes(), "run `make screenshots`"
    assert manifest["shots"] == SHOTS, "run `make screenshots`"
    for name in SHOTS:
        picture = Path(OUT / name).read_bytes()
        assert picture.startswith(b"\x89PNG\r\n\x1a\n") and len(picture) > 10_000, name

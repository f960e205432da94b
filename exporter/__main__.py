"""`python -m exporter`: the same program as the `session-metrics-exporter` command."""

from __future__ import annotations

import sys

from exporter.app.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""`python -m grafana.dashboards [--check]`: regenerate the committed dashboard JSON or check it."""

from __future__ import annotations

import argparse
import sys

from grafana.dashboards import DIRECTORY, render_all, write_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.dashboards", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed JSON is stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = [
            name
            for name, text in render_all().items()
            if not (DIRECTORY / name).exists()
            or (DIRECTORY / name).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"stale: grafana/dashboards/{name} (run `make dashboards`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

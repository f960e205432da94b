"""`python -m mixin [--job NAME] [--runbook-url URL] [--profile NAME] [--check] [--output DIR]`.

Regenerates everything the mixin config feeds: the Prometheus rules, the Grafana dashboards and
the Kubernetes PrometheusRule and dashboard ConfigMap. `--check` writes nothing and exits 1 when
a committed file differs from what the config generates; `--output` writes the tree elsewhere
(e.g. another job's copy) instead of over the committed files. `--profile` lays
`mixin/profiles/<NAME>.yml` over the config (`drill`: the incident drills' short windows); a
profile's files are never the committed ones, so it needs `--output`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mixin import ROOT, render_all
from mixin.config import DEFAULTS, load, profiles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixin", description=__doc__)
    parser.add_argument("--config", type=Path, default=DEFAULTS, help="mixin config YAML")
    parser.add_argument("--job", help="Prometheus job name the exporter is scraped as")
    parser.add_argument("--runbook-url", help="absolute URL of docs/runbook.md")
    parser.add_argument("--profile", choices=profiles(), help="overlay of mixin/profiles/")
    parser.add_argument("--output", type=Path, default=ROOT, help="root of the written tree")
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    args = parser.parse_args(argv)
    if args.profile and args.output == ROOT and not args.check:
        parser.error("--profile needs --output: a profile's files are never the committed ones")
    try:
        config = load(args.config, job=args.job, runbook_url=args.runbook_url, profile=args.profile)
    except ValueError as exc:
        parser.error(str(exc))
    files = render_all(config)
    if args.check:
        stale = [
            path
            for path, text in files.items()
            if not (args.output / path).exists()
            or (args.output / path).read_text(encoding="utf-8") != text
        ]
        for path in stale:
            print(f"stale: {path} (run `make mixin`)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        target = args.output / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

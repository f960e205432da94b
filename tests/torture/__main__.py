"""`python -m tests.torture --seed N --minutes M`: a long random run (`make torture`).

Prints the schedule, each fault as it starts and each round's verdict; on a failure, the
report of every failed round (seed, schedule, rerun command, anomalies, the histories of the
sessions involved) and exit status 1. Histories and replica logs stay in `.cache/torture/`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

from tests.torture.deployments import KINDS
from tests.torture.runner import rerun_command, run_schedule
from tests.torture.schedule import plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.torture", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--deployment", choices=KINDS, help="every round on this deployment")
    parser.add_argument("--round", type=int, help="run only this round of the schedule")
    args = parser.parse_args(argv)
    # Stopped with SIGTERM (a CI timeout, `kill`): unwind as for Ctrl-C, so that every Redis,
    # sentinel and replica process of the round is stopped, not left running without a parent.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    schedule = plan(seed, args.minutes * 60, deployment=args.deployment)
    print(schedule.describe(), flush=True)
    print(f"rerun: {rerun_command(schedule)}", flush=True)
    results = asyncio.run(
        run_schedule(schedule, only_round=args.round, progress=lambda line: print(line, flush=True))
    )
    failed = [result for result in results if not result.valid]
    for result in failed:
        print("\n" + result.outcome.report, flush=True)
    print(f"\nseed {seed}: {len(results) - len(failed)} of {len(results)} rounds held", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

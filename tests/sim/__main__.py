"""`make soak SEEDS=N`: run the core simulator over many seeds, printing progress.

.venv/bin/python -m tests.sim --seeds 10000 [--first 0] [--steps 40]
.venv/bin/python -m tests.sim --seed 1234        # replay one failing seed
"""

from __future__ import annotations

import argparse
import sys
import time

from server.bootstrap import load_calendar
from tests.sim.simulator import SimulationFailure, run_seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=1000, help="how many seeds to run")
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    parser.add_argument("--seed", type=int, help="run this one seed only")
    parser.add_argument("--steps", type=int, default=40, help="steps per seed")
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else range(args.first, args.first + args.seeds)
    calendar = load_calendar()
    started = time.monotonic()
    failures = 0
    for done, seed in enumerate(seeds, start=1):
        try:
            stats = run_seed(seed, calendar, args.steps)
        except SimulationFailure as failure:
            failures += 1
            print(f"FAIL {failure}", flush=True)
            continue
        if args.seed is not None:
            print(f"seed {seed}: {stats}")
        if done % 100 == 0 or done == len(seeds):
            rate = done / (time.monotonic() - started)
            print(f"{done}/{len(seeds)} seeds, {failures} failed, {rate:.1f} seeds/s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

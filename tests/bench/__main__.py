"""`make bench`: every benchmark, figures and ratios printed; nothing asserted.

`--only NAME` (repeatable) runs just those, e.g. `python -m tests.bench --only orders`.
"""

import argparse

from tests.bench import (
    bench_audit,
    bench_backtest,
    bench_crossover,
    bench_health,
    bench_memory,
    bench_orders,
    bench_stream,
)

BENCHES = {
    "stream": bench_stream.run,
    "audit": bench_audit.run,
    "health": bench_health.run,
    "memory": bench_memory.run,
    "orders": bench_orders.run,
    "crossover": bench_crossover.run,
    "backtest": bench_backtest.run,
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--only", action="append", choices=list(BENCHES), metavar="NAME")
    names = parser.parse_args().only or list(BENCHES)
    for n, name in enumerate(names):
        if n:
            print()
        BENCHES[name](print)

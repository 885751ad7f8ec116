"""`make bench`: every benchmark, figures and ratios printed; nothing asserted."""

from tests.bench import bench_audit, bench_health, bench_memory, bench_stream

if __name__ == "__main__":
    bench_stream.run()
    print()
    bench_audit.run(print)
    print()
    bench_health.run(print)
    print()
    bench_memory.run(print)

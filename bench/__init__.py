"""The benchmark suite: ``bench/run.sh [--quick]`` (see docs/performance.md)."""

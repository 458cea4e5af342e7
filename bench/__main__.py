"""`python -m bench`: the baseline alone, to check the machine and wrk."""

from __future__ import annotations

from bench.common import measure_baseline, print_header

if __name__ == "__main__":
    print_header("baseline")
    print(measure_baseline(seconds=5).line())

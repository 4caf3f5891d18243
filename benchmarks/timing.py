"""Wall-clock and CPU timing shared by the benchmarks (a module, not a benchmark)."""

from __future__ import annotations

import contextlib
import time


class Stopwatch:
    """Wall-clock and CPU seconds (all threads of this process) of the timed blocks.

    Blocks timed with ``with clock(): ...`` add up. The CPU seconds are what a busy
    shared machine distorts least: with one thread per package they are the work each
    package did.
    """

    def __init__(self):
        self.wall = 0.0
        self.cpu = 0.0

    @contextlib.contextmanager
    def __call__(self):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu

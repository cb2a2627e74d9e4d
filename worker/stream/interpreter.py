"""The interpreter settings the worker's loop runs with, set for the loop and restored after it.

The benchmark's baseline loops run under the same settings (bench/throughput.py), so that the
comparison is of the work, not of the interpreter's configuration.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# The loop thread does the CPU work; kafka-python's IO threads need the GIL only briefly. CPython's
# default 5 ms switch interval makes the loop hand the GIL over far more often than they need it
# (measured: about 15% of the loop's throughput); 50 ms stays far below every Kafka timeout
# (heartbeats are sent every second or more).
GIL_SWITCH_INTERVAL_S = 0.05
# A claim allocates a few hundred container objects that die young by reference counting; cycles are
# rare. CPython's default first-generation threshold (700) ran the collector every few claims, and
# its full collections walked the context store: 3.8% of the worker's CPU in bench/throughput.py.
# At 10,000 a young collection runs every few dozen claims; cyclic garbage waits at most that long.
GC_THRESHOLDS = (10_000, 10, 10)


@contextmanager
def loop_settings() -> Iterator[None]:
    """Run the block with the loop's switch interval and collector thresholds, everything allocated
    before it (modules, reference data, rule packs) frozen out of the collector's walks."""
    switch_interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(switch_interval)

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
# The collector's full collections walked everything the process had loaded (modules, reference
# data, rule packs) as well as the context: with those frozen out of its walks (`gc.freeze`), the
# collections cost 2.5% of the worker's CPU in bench/throughput.py instead of 3.8%. The thresholds
# stay CPython's: at 10,000 young objects instead of 700 they cost 0.5%, but the cyclic garbage left
# waiting cost 0.8 KiB of resident memory per patient in bench/context_memory.py (over its bound).


@contextmanager
def loop_settings() -> Iterator[None]:
    """Run the block with the loop's switch interval, everything allocated before it frozen out of
    the collector's walks."""
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        sys.setswitchinterval(switch_interval)

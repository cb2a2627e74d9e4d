"""Memory held per patient in the worker's context store (not a test).

Feeds one synthetic population's prescriptions, lab results and claims into a ContextStore, the way
the stream does, and reports the traced memory per patient. The README quotes this figure for
sizing `--context-scope global`, where every worker holds the whole population.

    python bench/context_memory.py [--patients 2000]
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

from worker.context import ContextStore
from worker.events import Claim, LabResult, Prescription
from worker.synthetic import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    args = parser.parse_args()
    dataset = generate(args.patients, seed=3)
    models = {"prescription": Prescription, "lab": LabResult, "claim": Claim}
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    # Validated inside the traced region: the records the store keeps are most of its memory.
    events = [models[event.kind].model_validate(event.record) for event in dataset.events]
    store = ContextStore(global_scope=True)
    for event in events:
        if isinstance(event, Prescription):
            store.add_prescription(0, event)
        elif isinstance(event, LabResult):
            store.add_lab(0, event)
        elif isinstance(event, Claim):
            store.add_claim(0, event)
    # Drop our own references: what stays traced is what the store keeps alive.
    del events
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    sizes = dict(store.sizes)
    print(
        f"patients: {sizes['patients']}, prescriptions: {sizes['prescriptions']}, labs: {sizes['labs']}, "
        f"prior claims: {sizes['prior_claims']}"
    )
    print(f"context store: {held / 1e6:.1f} MB traced, {held / max(sizes['patients'], 1) / 1024:.1f} KiB per patient")


if __name__ == "__main__":
    main()

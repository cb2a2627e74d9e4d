"""The generated dataset: events in production order, the rules planted per claim, offline bundles."""

from __future__ import annotations

import gc
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from typing import TextIO

from worker.devkit.synthetic.model import FastRandom, Ids, Record, SyntheticEvent
from worker.devkit.synthetic.patient import PatientSimulation
from worker.devkit.synthetic.reference import Catalog


@dataclass(frozen=True)
class SyntheticDataset:
    events: list[SyntheticEvent]  # production order: non-decreasing event_time, context before claims
    patients: int
    # (claim_id, claim_version) -> the rule ids a claim was deliberately given (it may trigger others too)
    planted: dict[tuple[str, int], frozenset[str]] = field(default_factory=dict)

    def claims(self) -> list[Record]:
        return [event.record for event in self.events if event.kind == "claim"]

    def bundles(self) -> Iterator[Record]:
        """One offline bundle per claim version, with exactly the context that precedes it."""
        context: dict[str, tuple[list[Record], list[Record], list[Record]]] = {}
        for event in self.events:
            prescriptions, labs, prior_claims = context.setdefault(event.key, ([], [], []))
            if event.kind == "prescription":
                prescriptions.append(event.record)
            elif event.kind == "lab":
                labs.append(event.record)
            else:
                yield {
                    "claim": event.record,
                    "prescriptions": list(prescriptions),
                    "labs": list(labs),
                    "prior_claims": list(prior_claims),
                }
                prior_claims.append(event.record)


def write_bundles(dataset: SyntheticDataset, out: TextIO) -> int:
    """Write the dataset's bundles as JSON Lines (`python -m worker evaluate` input); returns the count."""
    written = 0
    for bundle in dataset.bundles():
        out.write(json.dumps(bundle, separators=(",", ":")) + "\n")
        written += 1
    return written


def generate(patients: int, *, seed: int = 7, start: date = date(2025, 1, 6)) -> SyntheticDataset:
    """Simulate `patients` transplant recipients from `start` for about six months."""
    if patients < 0:
        raise ValueError("patients must not be negative")
    rng = FastRandom(seed)
    ids = Ids(seed)
    catalog = Catalog.load()
    timed: list[tuple[int, SyntheticEvent]] = []
    planted: dict[tuple[str, int], frozenset[str]] = {}
    usage: Counter[str] = Counter()
    # Hundreds of thousands of small acyclic dicts: cyclic GC passes over the growing heap add about 60%
    # to the run time at 10,000 patients, and there are no cycles to find.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for _ in range(patients):
            simulation = PatientSimulation(rng, ids, catalog, start, usage)
            timed.extend(simulation.run())
            planted.update(simulation.planted)
    finally:
        if collecting:
            gc.enable()
    # Stable sort: events of equal time keep generation order, which is causal within a patient.
    timed.sort(key=itemgetter(0))
    events = [event for _, event in timed]
    # RFC 9562 version-8 UUIDs: a seed-derived prefix and the event's position (uuid5 per event is slow)
    digest = hashlib.sha256(f"j7507-synthetic-events:{seed}".encode()).hexdigest()
    prefix = f"{digest[:8]}-{digest[8:12]}-8{digest[13:16]}-{'89ab'[int(digest[16], 16) % 4]}{digest[17:20]}-"
    for number, event in enumerate(events):
        event.record["event_id"] = f"{prefix}{number:012x}"
    return SyntheticDataset(events=events, patients=patients, planted=planted)

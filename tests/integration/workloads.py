"""Example bundles and generated workloads, with the offline decisions to compare against.

Every timeout here is a guard against a hung test, never a performance expectation.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.engine.evaluate import Evaluator
from worker.engine.events import Decision
from worker.engine.reference import load_reference
from worker.engine.rules.packs import load_packs
from worker.offline.offline import evaluate_bundle_text

from .stream_setup import BUNDLES_FILE, HEPATIC_LOINC, Bundle, Kind

# --- bundles and workloads ----------------------------------------------------------------------


def load_example_bundles() -> list[tuple[str, Bundle]]:
    """(name, bundle) of each example in tests/fixtures/bundles.jsonl."""
    examples = []
    for line in BUNDLES_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            examples.append((item["name"], item["bundle"]))
    return examples


def iso_millis(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class EventClock:
    """Strictly increasing event times, so "later event_time" and "later in the list" agree."""

    def __init__(self, start: datetime | None = None) -> None:
        self._next = start or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

    def tick(self) -> str:
        moment, self._next = self._next, self._next + timedelta(milliseconds=1)
        return iso_millis(moment)


def as_event(record: Mapping[str, Any], clock: EventClock) -> dict[str, Any]:
    """A copy with the envelope fields the Avro schemas require (bundles may omit them)."""
    event = copy.deepcopy(dict(record))
    if not event.get("event_id"):
        event["event_id"] = str(uuid.uuid4())
    if not event.get("event_time"):
        event["event_time"] = clock.tick()
    return event


def personalise(bundle: Bundle, patient_id: str, clock: EventClock, *, claim_id: str | None = None) -> Bundle:
    """The bundle for another patient (and claim id), every record with an event id and time.

    Event times follow the production order (prescriptions, labs, then the claim), so the
    changelog order offline (list order) and on the stream (event_time) are the same.
    """
    if bundle.get("prior_claims"):
        raise ValueError("prior claims are history the worker learns from the claims topic; produce them as claims")
    out: Bundle = {"prescriptions": [], "labs": [], "prior_claims": []}
    for kind in ("prescriptions", "labs"):
        for record in bundle.get(kind, []):
            out[kind].append(as_event({**record, "patient_id": patient_id}, clock))
    claim = {**bundle["claim"], "patient_id": patient_id}
    if claim_id is not None:
        claim["claim_id"] = claim_id
    out["claim"] = as_event(claim, clock)
    return out


@dataclass
class Workload:
    """Many patients' events in production order, and the offline bundle of every claim version."""

    context: list[tuple[Kind, dict[str, Any]]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    bundles: dict[tuple[str, int], Bundle] = field(default_factory=dict)
    _patients: dict[str, Bundle] = field(default_factory=dict, repr=False)

    def _patient(self, patient_id: str) -> Bundle:
        return self._patients.setdefault(patient_id, {"prescriptions": [], "labs": [], "prior_claims": []})

    def add_context(self, kind: Kind, record: dict[str, Any]) -> None:
        self.context.append((kind, record))
        self._patient(record["patient_id"])["prescriptions" if kind == "prescription" else "labs"].append(record)

    def add_claim(self, claim: dict[str, Any]) -> None:
        """Queue a claim; its bundle holds its patient's context and every earlier claim of theirs."""
        patient = self._patient(claim["patient_id"])
        self.bundles[(claim["claim_id"], claim["claim_version"])] = {
            "claim": claim,
            "prescriptions": list(patient["prescriptions"]),
            "labs": list(patient["labs"]),
            "prior_claims": list(patient["prior_claims"]),
        }
        patient["prior_claims"].append(claim)
        self.claims.append(claim)


# Claim versions per patient: (claim suffix, version, date of service). A resubmission, a second
# claim on the same date of service (a duplicate-line only the patient's history reveals) and its
# correction to a later date (no finding).
CLAIM_PLAN = (("A", 1, "2025-12-01"), ("A", 2, "2025-12-01"), ("B", 1, "2025-12-01"), ("B", 2, "2025-12-29"))


def make_workload(tag: str, patients: int, claims: Sequence[tuple[str, int, str]] = CLAIM_PLAN) -> Workload:
    """Context for `patients` patients, then their claims, from the first example (a clean claim).

    The claims go round-robin over the patients, plan entry by plan entry, so a patient's later
    claims find the earlier ones as history, and the offline bundle (with its prior claims) must
    reproduce what that history changes. Every third patient lacks the hepatic lab (HOLD).
    Claim and prescription ids do not contain the patient id: the worker may log them.
    """
    template = load_example_bundles()[0][1]
    clock = EventClock()
    workload = Workload()
    for number in range(patients):
        patient_id = f"{tag}-P{number:05d}"
        for prescription in template["prescriptions"]:
            rx = {**prescription, "patient_id": patient_id, "prescription_id": f"{tag}-RX{number:05d}"}
            workload.add_context("prescription", as_event(rx, clock))
        for lab in template["labs"]:
            if number % 3 == 0 and lab["loinc_code"] == HEPATIC_LOINC:
                continue
            observation = {**lab, "patient_id": patient_id, "observation_id": f"{tag}-{lab['observation_id']}-{number}"}
            workload.add_context("lab", as_event(observation, clock))
    base = template["claim"]
    for suffix, version, date_of_service in claims:
        for number in range(patients):
            lines = [
                {**line, "date_of_service": date_of_service, "prescription_id": f"{tag}-RX{number:05d}"}
                for line in base["lines"]
            ]
            claim = {
                **base,
                "claim_id": f"{tag}-C{number:05d}-{suffix}",
                "claim_version": version,
                "patient_id": f"{tag}-P{number:05d}",
                "lines": lines,
            }
            workload.add_claim(as_event(claim, clock))
    return workload


class OfflineJudge:
    """What `python -m worker evaluate` decides for a bundle (default packs, shipped crosswalk)."""

    def __init__(self) -> None:
        self.evaluator = Evaluator(load_packs(None), load_reference(None))

    def decide(self, bundle: Bundle) -> Decision:
        return evaluate_bundle_text(self.evaluator, json.dumps(bundle))

    def expected(self, bundle: Bundle) -> dict[str, Any]:
        return comparable(self.decide(bundle).to_dict())


def comparable(decision: Mapping[str, Any]) -> dict[str, Any]:
    """A decision without what legitimately differs between the stream and offline evaluation: when it
    was made, where the claim was read, and the time its context was taken as of (the stream's record
    time, offline the claim's event_time)."""
    return {name: value for name, value in decision.items() if name not in ("decided_at", "source", "context_as_of")}

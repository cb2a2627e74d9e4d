"""Synthetic multi-year patient histories, for the context horizon's benchmark and property tests.

Each patient is followed month by month: three labs (tacrolimus trough, creatinine, eGFR) a few
days before a monthly refill claim, and a prescription renewed each quarter (a new prescription id,
the old one ending). `noise` adds what real streams carry and the horizon must get right: corrected
and cancelled labs, prescriptions entered in error or stopped, resubmitted claims, claims filed
late (some past the payer's limit), interacting drugs, skipped labs. Events are plain dicts in the
JSON shape of docs/contract.md, in time order (`event_time`), each with its Kafka key. Everything is
deterministic for a seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from worker.devkit.synthetic import EventKind, SyntheticEvent

Record = dict[str, Any]

GENERIC_1MG = "55111052601"  # tacrolimus 1 mg capsule, generic (the crosswalk's J7507 rows)
BRAND_1MG = "00469061773"
LEVEL, CREATININE, EGFR = "11253-2", "2160-0", "98979-8"
PAYERS = (("MEDICARE", "MEDICARE-DME-JC"), ("COMMERCIAL", "ACME-COMMERCIAL"), ("MEDICAID", "STATE-MEDICAID"))


@dataclass(frozen=True)
class HistoryOptions:
    patients: int = 1000
    years: int = 2
    start: date = date(2022, 1, 3)
    seed: int = 11
    noise: float = 0.0  # 0: the plain monthly history; up to 1: often the odd events above


def _stamp(day: date, minute: int) -> str:
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=minute)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class _Patient:
    def __init__(self, number: int, options: HistoryOptions, rng: random.Random) -> None:
        self.id = f"HP-{number:06d}"
        self.options = options
        self.rng = rng
        self.payer_type, self.payer_id = rng.choice(PAYERS)
        self.organ = rng.choice(("KIDNEY", "LIVER", "HEART"))
        self.transplant = options.start - timedelta(days=rng.randint(120, 2000))
        self.dose = rng.choice((1.0, 2.0, 3.0))
        self.events: list[tuple[str, int, SyntheticEvent]] = []
        self.serial = 0

    def emit(self, kind: EventKind, day: date, minute: int, record: Record) -> None:
        self.serial += 1
        record["event_id"] = f"{self.id}-{self.serial}"
        record["event_time"] = _stamp(day, minute)
        record["patient_id"] = self.id
        self.events.append((record["event_time"], self.serial, SyntheticEvent(kind, self.id, record)))

    def noisy(self, share: float) -> bool:
        return self.rng.random() < share * self.options.noise

    def run(self) -> None:
        months = self.options.years * 12
        prescription_id = ""
        for month in range(months):
            day = self.options.start + timedelta(days=28 * month + self.rng.randint(0, 2))
            if month % 3 == 0:
                prescription_id = self._renew(month, day)
            self._labs(month, day)
            if self.noisy(0.04):
                self._interacting_drug(day)
            self._claim(month, day, prescription_id)

    def _renew(self, month: int, day: date) -> str:
        prescription_id = f"{self.id}-RX{month // 3}"
        record = {
            "prescription_id": prescription_id,
            "status": "ACTIVE",
            "ingredient": "tacrolimus",
            "formulation": "IMMEDIATE_RELEASE",
            "route": "ORAL",
            "strength_mg": 1.0,
            "dose_mg": self.dose,
            "doses_per_day": 2,
            "days_supply": 30,
            "start_date": day.isoformat(),
            "end_date": (day + timedelta(days=85)).isoformat(),  # the next starts 84 to 86 days later
            "dosing_weight_kg": 70.0,
            "dispense_as_written": False,
        }
        self.emit("prescription", day - timedelta(days=2), 600, record)
        if self.noisy(0.05):  # a duplicate order entered in error, withdrawn a few days later
            self.emit(
                "prescription", day - timedelta(days=2), 610, {**record, "prescription_id": prescription_id + "X"}
            )
            self.emit(
                "prescription",
                day + timedelta(days=3),
                600,
                {**record, "prescription_id": prescription_id + "X", "status": "ENTERED_IN_ERROR"},
            )
        return prescription_id

    def _labs(self, month: int, day: date) -> None:
        drawn = day - timedelta(days=self.rng.randint(2, 6))
        for code, value in (
            (LEVEL, round(self.rng.uniform(4.0, 16.0), 1)),
            (CREATININE, round(self.rng.uniform(0.8, 1.6), 1)),
            (EGFR, float(self.rng.randint(28, 90))),
        ):
            if self.noisy(0.08):
                continue  # not drawn this month
            observation_id = f"{self.id}-{code}-{month}"
            record = {
                "observation_id": observation_id,
                "loinc_code": code,
                "value": value,
                "unit": None,
                "effective_time": _stamp(drawn, 480),
                "status": "FINAL",
            }
            self.emit("lab", drawn, 720, record)
            if self.noisy(0.05):
                status = self.rng.choice(("CORRECTED", "ENTERED_IN_ERROR"))
                fixed = {**record, "status": status, "value": round(value * self.rng.uniform(0.5, 2.5), 1)}
                self.emit("lab", drawn + timedelta(days=self.rng.randint(1, 40)), 720, fixed)

    def _interacting_drug(self, day: date) -> None:
        self.emit(
            "prescription",
            day - timedelta(days=10),
            660,
            {
                "prescription_id": f"{self.id}-AZ-{day.isoformat()}",
                "status": "ACTIVE",
                "ingredient": self.rng.choice(("voriconazole", "clarithromycin", "rifampin")),
                "formulation": "OTHER",
                "route": "ORAL",
                "start_date": (day - timedelta(days=10)).isoformat(),
                "end_date": (day + timedelta(days=self.rng.randint(5, 200))).isoformat(),
                "dispense_as_written": False,
            },
        )

    def _claim(self, month: int, day: date, prescription_id: str) -> None:
        medicare = self.payer_type == "MEDICARE"
        units = round(self.dose * 2 * 30)
        brand = self.noisy(0.05)
        claim = {
            "claim_id": f"{self.id}-C{month}",
            "claim_version": 1,
            "payer": {"payer_id": self.payer_id, "payer_type": self.payer_type, "plan_id": None},
            "coverage": {"part_a_at_transplant": True, "part_b_active": True, "entitlement": "AGE"}
            if medicare
            else None,
            "transplant": {"organ": self.organ, "transplant_date": self.transplant.isoformat()},
            "diagnosis_codes": ["Z94.0" if self.organ == "KIDNEY" else "Z94.4" if self.organ == "LIVER" else "Z94.1"],
            "abn_on_file": False,
            "dispensing_pharmacy_npi": "1003000142",
            "lines": [
                {
                    "line_number": 1,
                    "hcpcs_code": "J7507",
                    "modifiers": ["KX"] if medicare else [],
                    "units": float(units),
                    "charge_amount": f"{units * 1.37:.2f}",
                    "date_of_service": day.isoformat(),
                    "ndc": BRAND_1MG if brand else GENERIC_1MG,
                    "ndc_quantity": float(units),
                    "ndc_unit": "UN",
                    "days_supply": 30,
                    "prescription_id": prescription_id if not self.noisy(0.1) else None,
                }
            ],
        }
        filed = day
        if self.noisy(0.08):  # billed late: some at the payer's limit exactly, some just past it
            limit = 180 if self.payer_type == "COMMERCIAL" else 365
            filed = day + timedelta(days=self.rng.choice((20, 90, limit - 3, limit, limit + 1)))
        self.emit("claim", filed, 900 + self.rng.randint(0, 300), claim)
        if self.noisy(0.05):  # a resubmission a few days later
            self.emit("claim", filed + timedelta(days=self.rng.randint(1, 5)), 900, {**claim, "claim_version": 2})


def generate_history(options: HistoryOptions) -> list[SyntheticEvent]:
    """Every patient's events, in time order (ties: the order each patient's were recorded)."""
    rng = random.Random(options.seed)
    timeline: list[tuple[str, int, int, SyntheticEvent]] = []
    for number in range(options.patients):
        patient = _Patient(number, options, random.Random(rng.getrandbits(64)))
        patient.run()
        timeline.extend((stamp, number, serial, event) for stamp, serial, event in patient.events)
    timeline.sort(key=lambda item: item[:3])
    return [event for *_, event in timeline]


def by_patient(events: list[SyntheticEvent]) -> Iterator[tuple[str, list[SyntheticEvent]]]:
    grouped: dict[str, list[SyntheticEvent]] = {}
    for event in events:
        grouped.setdefault(event.key, []).append(event)
    yield from grouped.items()

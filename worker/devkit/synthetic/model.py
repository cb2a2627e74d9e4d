"""The generator's working records: regimens, claim plans, lab draws, ids, timestamps, seeded randomness."""

from __future__ import annotations

import calendar
import hashlib
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from itertools import count
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from worker.devkit.synthetic.scenario import Scenario

Record = dict[str, Any]
EventKind = Literal["prescription", "lab", "claim"]


@dataclass(frozen=True)
class SyntheticEvent:
    kind: EventKind
    key: str  # patient_id, the Kafka key
    record: Record


@dataclass(frozen=True)
class Component:
    """One prescription of a regimen: a capsule strength and the mg of it per administration."""

    strength_mg: float
    dose_mg: float
    ndc: str
    prescription_id: str


@dataclass(frozen=True)
class Regimen:
    """Twice-daily tacrolimus, one prescription per capsule strength, written together."""

    components: tuple[Component, ...]
    start_date: date
    announced: date  # when the prescriptions are recorded
    weight_kg: float

    @property
    def daily_dose_mg(self) -> float:
        return 2 * sum(component.dose_mg for component in self.components)


@dataclass
class ClaimPlan:
    kind: Literal["refill", "supply-only"]
    date_of_service: date
    days_supply: int
    regimen: Regimen
    scenario: Scenario | None = None
    anchor: date | None = None  # scenario date: lab gap start, interacting drug start, ...
    variant: int = 0


@dataclass(frozen=True)
class Slot:
    """What decides which problems fit the next claim."""

    refills: int  # refill claims planned so far
    day: date
    previous: ClaimPlan | None
    regimen: Regimen
    last_lab_scenario: dict[str, date]  # lab group -> DOS of the latest scenario that reshaped it
    regimen_changed: bool
    history_start: date  # the patient's first recorded day

    @property
    def strengths(self) -> set[float]:
        return {component.strength_mg for component in self.regimen.components}

    @property
    def gap(self) -> int:
        """Days since the previous claim (999 for the first)."""
        return (self.day - self.previous.date_of_service).days if self.previous else 999

    @property
    def lab_history(self) -> int:
        """Days of lab history before the claim."""
        return (self.day - self.history_start).days


@dataclass
class Draw:
    day: date
    groups: tuple[str, ...]  # trough, renal, hepatic
    baseline: bool = True  # baseline draws get preliminary/corrected/cancelled variants
    trough: float | None = None  # forced values
    creatinine_factor: float | None = None


class Ids:
    """Readable, seed-specific identifiers (no patient data in claim or prescription ids)."""

    def __init__(self, seed: int) -> None:
        self.tag = hashlib.sha256(f"j7507-synthetic:{seed}".encode()).hexdigest()[:4].upper()
        self.counters: dict[str, Iterator[int]] = defaultdict(lambda: count(1))

    def next(self, prefix: str) -> str:
        return f"{prefix}-{self.tag}{next(self.counters[prefix]):07d}"


_CLOCK = tuple(f"T{minute // 60:02d}:{minute % 60:02d}:00Z" for minute in range(1440))
_ISO_DAYS: dict[int, str] = {}  # ordinal -> "YYYY-MM-DD": formatting dates is the generator's hot spot


def minutes(day: date, minute: int) -> tuple[int, str]:
    """Sort key (minutes since year 1) and the ISO 8601 UTC string of `minute` past midnight of `day`."""
    ordinal = day.toordinal() + minute // 1440
    minute %= 1440
    iso = _ISO_DAYS.get(ordinal)
    if iso is None:
        iso = _ISO_DAYS[ordinal] = date.fromordinal(ordinal).isoformat()
    return ordinal * 1440 + minute, iso + _CLOCK[minute]


class FastRandom(random.Random):
    """random.Random with a cheaper randint (one float draw; its bias is far below anything we measure)."""

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))


def coverage_end(transplant_date: date) -> date:
    """ESRD-only Medicare ends with the 36th month after the transplant month."""
    month_index = transplant_date.year * 12 + transplant_date.month - 1 + 36
    year, month = divmod(month_index, 12)
    return date(year, month + 1, calendar.monthrange(year, month + 1)[1])


def ckd_epi_egfr(creatinine: float, age: int, female: bool) -> float:
    """CKD-EPI 2021 (race-free) from serum creatinine in mg/dL."""
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = creatinine / kappa
    value: float = 142 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.2 * 0.9938**age
    return float(round(value * (1.012 if female else 1.0)))


@dataclass
class Breaking:
    """A clean claim being given its problem: the J7507 lines, one of them drawn, strengths by NDC."""

    claim: Record
    plan: ClaimPlan
    j7507: list[Record]
    line: Record
    strength: dict[str | None, float]

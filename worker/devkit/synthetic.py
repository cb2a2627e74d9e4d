"""Realistic synthetic EHR events for the demo, the throughput benchmark and tests.

Each synthetic patient is a transplant recipient on immediate-release tacrolimus followed for about
six months: prescriptions that change with the dose, lab series (troughs, renal and liver tests,
with preliminary, corrected and cancelled results), monthly or 90-day refill claims and the odd
resubmission. About a quarter of the claims carry one deliberate problem, drawn from every family
of the rule catalogue (rules.md); the rest are clean, as most real claims are. `planted` records
which rule each deliberate problem is meant to trigger, so tests can check the generator and the
rules against each other.

Records are plain dicts in the JSON shape of contract.md. Everything is deterministic for a seed.
The payer-specific settings the generator honours (prior authorization, specialty pharmacies,
supply limits, caps, formularies) mirror the override files in `examples/payer-config/`.

How a patient is simulated: a profile (organ, payer, coverage, weight, products), then a plan of
refill dates with the dose in use and, for some claims, a problem that fits them (`SCENARIOS`);
then the events. Problems that need context reshape it around their claim only: a lab series gets
a gap or an out-of-range value with a recheck after the claim, a stray order is recorded just
before the claim and closed just after it. Clean claims are clean by construction: exact units,
refills inside the window, a counted trough within 90 days, KX where Medicare expects it.
"""

from __future__ import annotations

import calendar
import gc
import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from itertools import count
from operator import itemgetter
from typing import Any, Literal, TextIO

from worker.engine.reference import NdcProduct, load_reference
from worker.engine.rules.packs import PackSettings, load_built_in_packs

Record = dict[str, Any]
EventKind = Literal["prescription", "lab", "claim"]

SPAN_DAYS = 182  # each patient's claims fall within this many days from `start`
PROBLEM_SHARE = 0.28  # claims given a deliberate problem (natural ones, such as a lapsed ESRD benefit, add a few)


@dataclass(frozen=True)
class SyntheticEvent:
    kind: EventKind
    key: str  # patient_id, the Kafka key
    record: Record


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
    rng = _Random(seed)
    ids = _Ids(seed)
    catalog = _Catalog.load()
    timed: list[tuple[int, SyntheticEvent]] = []
    planted: dict[tuple[str, int], frozenset[str]] = {}
    usage: Counter[str] = Counter()
    # Hundreds of thousands of small acyclic dicts: cyclic GC passes over the growing heap add about 60%
    # to the run time at 10,000 patients, and there are no cycles to find.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for _ in range(patients):
            simulation = _PatientSimulation(rng, ids, catalog, start, usage)
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


# --- reference choices ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Payer:
    """A payer as the generator sees it. Non-Medicare settings mirror examples/payer-config/."""

    payer_id: str
    payer_type: Literal["MEDICARE", "MEDICAID", "COMMERCIAL"]
    share: float
    plan_ids: tuple[str, ...] = ()
    max_days_supply: int = 90  # Medicare: from 2025-01-01 (30 before)
    refill_window_days: int = 10
    mail_order_share: float = 0.0  # patients on 90-day fills where the limit allows
    requires_prior_auth: bool = False
    specialty_pharmacy_npis: tuple[str, ...] = ()
    lifetime_units_cap: float | None = None
    non_preferred_ndcs: tuple[str, ...] = ()

    @property
    def medicare(self) -> bool:
        return self.payer_type == "MEDICARE"

    @property
    def step_therapy(self) -> bool:
        # commercial-default and medicaid-default both set step_therapy_generic_first
        return not self.medicare

    @property
    def timely_filing_days(self) -> int:
        # the built-in packs' limits (rules.md): one year for Medicare and Medicaid, 180 days commercial
        return 180 if self.payer_type == "COMMERCIAL" else 365

    def days_supply_limit(self, date_of_service: date) -> int:
        if self.medicare and date_of_service < date(2025, 1, 1):
            return 30
        return self.max_days_supply


def _npi(base: str) -> str:
    """A 10-digit NPI with a valid check digit (Luhn over the 80840 prefix, as CMS specifies)."""
    total = 0
    for position, char in enumerate(reversed("80840" + base)):
        digit = int(char)
        if position % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return base + str((10 - total % 10) % 10)


SPECIALTY_PHARMACY_NPIS = (_npi("174205938"), _npi("183610472"))
_RETAIL_PHARMACIES = tuple(
    (_npi(base), _npi(billing))
    for base, billing in (
        ("102938475", "102938476"),
        ("113847562", "113847563"),
        ("124756389", "124756390"),
        ("135620947", "135620948"),
        ("146573829", "146573830"),
        ("157382946", "157382947"),
    )
)
_SPECIALTY_BILLING_NPIS = {SPECIALTY_PHARMACY_NPIS[0]: _npi("174205939"), SPECIALTY_PHARMACY_NPIS[1]: _npi("183610473")}
_TRANSPLANT_CENTERS = tuple(
    (center, tuple(_npi(base) for base in prescribers))  # transplant center, its prescribers' NPIs
    for center, prescribers in (
        ("Lakeside University Transplant Center", ("160293847", "160293848", "160293849")),
        ("St. Brendan Medical Center", ("171029384", "171029385")),
        ("Mercy Heights Hospital", ("182736450", "182736451")),
        ("Riverbend Regional Medical Center", ("193847561", "193847562")),
        ("Northfield Transplant Institute", ("108273645", "108273646", "108273647")),
    )
)
# Example formularies (examples/payer-config/): Strides' 0.5 mg capsules are off Texas Medicaid's,
# Prograf unit-dose packs (meant for institutions) off Blue Harbor's
_TX_NON_PREFERRED = ("64380072001", "64380072006")
_UNIT_DOSE_PACKS = ("00469061711", "00469065711")

PAYERS = (
    _Payer("MEDICARE-DME-JA", "MEDICARE", 0.11, mail_order_share=0.3),
    _Payer("MEDICARE-DME-JB", "MEDICARE", 0.12, mail_order_share=0.3),
    _Payer("MEDICARE-DME-JC", "MEDICARE", 0.15, mail_order_share=0.3),
    _Payer("MEDICARE-DME-JD", "MEDICARE", 0.12, mail_order_share=0.3),
    _Payer(
        "ACME-HEALTH",
        "COMMERCIAL",
        0.13,
        ("ACME-GOLD-PPO", "ACME-SILVER-HMO"),
        max_days_supply=30,
        requires_prior_auth=True,
        specialty_pharmacy_npis=SPECIALTY_PHARMACY_NPIS,
    ),
    _Payer(
        "BLUE-HARBOR-PPO",
        "COMMERCIAL",
        0.15,
        ("BH-PPO-2025",),
        refill_window_days=7,
        mail_order_share=0.4,
        non_preferred_ndcs=_UNIT_DOSE_PACKS,
    ),
    _Payer("SUMMIT-CARE", "COMMERCIAL", 0.07, ("SUMMIT-BASIC",), lifetime_units_cap=1000, mail_order_share=0.4),
    _Payer(
        "STATE-MEDICAID-TX", "MEDICAID", 0.09, ("TX-STAR",), max_days_supply=30, non_preferred_ndcs=_TX_NON_PREFERRED
    ),
    _Payer("STATE-MEDICAID-OH", "MEDICAID", 0.06, ("OH-MEDICAID",), max_days_supply=30, requires_prior_auth=True),
)

_ORGANS = (("KIDNEY", "LIVER", "HEART", "LUNG", "HEART_LUNG", "PANCREAS", "INTESTINE"), (60, 25, 8, 5, 0.5, 1, 0.5))
_ENTITLEMENTS_KIDNEY = (("AGE", "ESRD_ONLY", "DISABILITY"), (0.5, 0.3, 0.2))
_ENTITLEMENTS_OTHER = (("AGE", "DISABILITY"), (0.75, 0.25))
_DIAGNOSIS = {
    "KIDNEY": "Z94.0",
    "HEART": "Z94.1",
    "LUNG": "Z94.2",
    "HEART_LUNG": "Z94.3",
    "LIVER": "Z94.4",
    "INTESTINE": "Z94.82",
    "PANCREAS": "Z94.83",
}
_REJECTION_CODES = {"KIDNEY": "T86.11", "LIVER": "T86.41", "HEART": "T86.21", "LUNG": "T86.811"}
_COMORBIDITIES = ("I10", "E11.9", "D84.821", "Z79.899", "E78.5", "N18.30")
_UNCOVERED_DIAGNOSES = ("Z94.5", "Z94.6", "Z94.7", "Z79.899")  # skin, bone, cornea; long-term drug use
# mg/kg/day of tacrolimus (label starting doses, then lower maintenance), by phase
_DOSE_PER_KG = {
    "KIDNEY": ((0.10, 0.15), (0.04, 0.09)),
    "LIVER": ((0.08, 0.12), (0.03, 0.07)),
    "HEART": ((0.06, 0.075), (0.04, 0.07)),
    "LUNG": ((0.06, 0.075), (0.05, 0.08)),
}
# Trough values a stable patient shows (ng/mL), well inside the packs' trough_targets: (early, later)
_TROUGH_USUAL = {
    "KIDNEY": ((6.0, 14.0), (5.0, 11.0)),
    "HEART": ((11.0, 16.0), (6.0, 12.0)),
    "LUNG": ((10.5, 14.0), (8.5, 11.5)),
    "HEART_LUNG": ((10.5, 14.0), (8.5, 11.5)),
}
_DEFAULT_TROUGH_USUAL = ((6.0, 12.0), (6.0, 12.0))

_TROUGH = ("11253-2", "Tacrolimus [Mass/volume] in Blood", "ng/mL")
_TROUGH_BY_NAME = ("77348-1", "Tacrolimus [Mass/volume] in Blood --trough", "ng/mL")
_CREATININE = ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL")
_EGFR = (
    ("98979-8", "eGFR (CKD-EPI 2021)", "mL/min/{1.73_m2}"),
    ("62238-1", "eGFR (CKD-EPI 2009)", "mL/min/{1.73_m2}"),
    ("33914-3", "eGFR (MDRD)", "mL/min/{1.73_m2}"),
)
_HEPATIC = (
    ("1742-6", "ALT [Enzymatic activity/volume] in Serum or Plasma", "U/L", 12, 48, 0),
    ("1920-8", "AST [Enzymatic activity/volume] in Serum or Plasma", "U/L", 14, 42, 0),
    ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 0.3, 1.2, 1),
)
_POTASSIUM = ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L")

# Strong CYP3A4 inhibitors and inducers, with a typical course length in days
_INTERACTING_COURSES = (
    ("voriconazole", 28),
    ("posaconazole", 28),
    ("itraconazole", 21),
    ("clarithromycin", 10),
    ("rifampin", 120),
    ("carbamazepine", 180),
)


@dataclass(frozen=True)
class _Catalog:
    """What the generator draws on: J7507 products and their look-alikes from the shipped NDC
    crosswalk, and the trough targets of the built-in packs (the same in all three)."""

    generics: dict[float, tuple[str, ...]]  # strength -> non-brand J7507 NDCs
    brands: dict[float, tuple[str, ...]]
    lookalikes: dict[float, tuple[str, ...]]  # strength -> ER tacrolimus NDCs billed under other codes
    known: frozenset[str]
    brand_ndcs: frozenset[str]
    trough_targets: PackSettings

    @classmethod
    def load(cls) -> _Catalog:
        products = sorted(load_reference().crosswalk.values(), key=lambda product: product.ndc11)

        def by_strength(selected: list[NdcProduct]) -> dict[float, tuple[str, ...]]:
            grouped: dict[float, list[str]] = defaultdict(list)
            for product in selected:
                grouped[product.strength_mg].append(product.ndc11)
            return {strength: tuple(ndcs) for strength, ndcs in grouped.items()}

        j7507 = [product for product in products if product.hcpcs == "J7507"]
        return cls(
            generics=by_strength([product for product in j7507 if not product.brand]),
            brands=by_strength([product for product in j7507 if product.brand]),
            lookalikes=by_strength(
                [
                    product
                    for product in products
                    if product.ingredient == "tacrolimus"
                    and product.formulation == "EXTENDED_RELEASE"
                    and product.hcpcs != "J7507"
                ]
            ),
            known=frozenset(product.ndc11 for product in products),
            brand_ndcs=frozenset(product.ndc11 for product in j7507 if product.brand),
            trough_targets=load_built_in_packs()["medicare-dme"].settings,
        )

    def typo_of(self, ndc: str) -> str:
        """The NDC with two adjacent product-code digits swapped, as keyed in by hand: unknown to the crosswalk."""
        for position in range(5, 8):
            typo = ndc[:position] + ndc[position + 1] + ndc[position] + ndc[position + 2 :]
            if typo != ndc and typo not in self.known:
                return typo
        return ndc[:5] + "9999" + ndc[9:]


# --- scenarios ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scenario:
    family: str
    rule_id: str  # the rule the problem is meant to trigger
    fixable: bool = False  # a resubmission (claim_version 2) can correct it
    lab_group: str | None = None  # the lab series (trough, renal, hepatic) it reshapes around the claim
    weight: float = 1.0


SCENARIOS: dict[str, _Scenario] = {
    # coding and units
    "units-as-capsules": _Scenario("coding", "units-mismatch-ndc", fixable=True, weight=3.0),
    "lookalike-ndc": _Scenario("coding", "wrong-code-for-product", fixable=True),
    "ndc-missing": _Scenario("coding", "ndc-missing", fixable=True),
    "ndc-typo": _Scenario("coding", "ndc-not-in-crosswalk", fixable=True),
    "fractional-units": _Scenario("coding", "units-not-whole", weight=3.0),
    "modifier-25": _Scenario("coding", "modifier-not-allowed", fixable=True),
    "duplicate-line": _Scenario("coding", "duplicate-line", fixable=True),
    "duplicate-claim": _Scenario("coding", "duplicate-line", weight=0.5),
    "days-supply-over-limit": _Scenario("coding", "days-supply-exceeds-limit", weight=4.5),
    "filed-late": _Scenario("coding", "timely-filing-expired", weight=0.6),
    # order and quantity
    "lapsed-prescription": _Scenario("order", "no-active-prescription"),
    "strength-mismatch": _Scenario("order", "prescription-strength-mismatch"),
    "quantity-over": _Scenario("order", "quantity-exceeds-prescription"),
    "quantity-under": _Scenario("order", "quantity-below-prescription"),
    "early-refill": _Scenario("order", "early-refill"),
    "weight-slip": _Scenario("order", "dose-above-weight-norm", weight=1.5),
    # transplant and coverage
    "transplant-date-missing": _Scenario("coverage", "transplant-not-documented", fixable=True),
    "transplant-date-typo": _Scenario("coverage", "transplant-after-service", fixable=True),
    "discharge-date-typo": _Scenario("coverage", "service-before-discharge", fixable=True),
    "early-delivery": _Scenario("coverage", "service-before-discharge"),  # a fresh transplant's first fill
    "uncovered-diagnosis": _Scenario("coverage", "diagnosis-not-covered", fixable=True),
    "kx-missing": _Scenario("coverage", "kx-modifier-missing", fixable=True, weight=2.5),
    "part-a-missing": _Scenario("coverage", "part-a-not-at-transplant", fixable=True, weight=2.5),
    "part-b-inactive": _Scenario("coverage", "part-b-not-active", fixable=True, weight=2.5),
    "esrd-flag-missing": _Scenario("coverage", "esrd-coverage-ended", fixable=True, weight=4.0),
    "ga-without-abn": _Scenario("coverage", "abn-modifier-conflict", fixable=True, weight=3.0),
    # overlapping therapy and interactions
    "cyclosporine-active": _Scenario("overlap", "concurrent-cyclosporine", weight=0.7),
    "er-tacrolimus-active": _Scenario("overlap", "concurrent-extended-release-tacrolimus", weight=0.6),
    "inhibitor-without-level": _Scenario("overlap", "interacting-drug-without-level", lab_group="trough"),
    "sirolimus-liver-heart": _Scenario("overlap", "sirolimus-with-liver-or-heart", weight=3.0),
    # laboratory context
    "trough-gap": _Scenario("labs", "trough-missing", lab_group="trough", weight=2.0),
    "trough-out-of-range": _Scenario("labs", "trough-out-of-range", lab_group="trough"),
    "renal-gap": _Scenario("labs", "renal-function-missing", lab_group="renal", weight=2.0),
    "renal-decline": _Scenario("labs", "renal-function-declining", lab_group="renal", weight=0.7),
    "hepatic-gap": _Scenario("labs", "hepatic-function-missing", lab_group="hepatic", weight=6.0),
    # payer requirements
    "prior-auth-missing": _Scenario("payer", "prior-auth-missing", fixable=True, weight=1.5),
    "prior-auth-pending": _Scenario("payer", "prior-auth-pending", fixable=True, weight=1.5),
    "retail-pharmacy": _Scenario("payer", "specialty-pharmacy-required", weight=2.5),
    "brand-first": _Scenario("payer", "step-therapy-not-met", fixable=True, weight=5.0),
    "non-preferred-ndc": _Scenario("payer", "non-preferred-product", fixable=True, weight=5.0),
}
# Payer problems apply to fewer patients (non-Medicare plans with the matching setting): weigh up
_FAMILY_WEIGHT = {"coding": 1.0, "order": 1.0, "coverage": 1.0, "overlap": 0.8, "labs": 1.0, "payer": 2.0}
_BY_FAMILY = {family: [name for name, s in SCENARIOS.items() if s.family == family] for family in _FAMILY_WEIGHT}
_LAB_SCENARIO_SPACING_DAYS = 130  # scenarios reshaping one lab series never overlap (gap 96 + recheck)
_CLEAN_INTERACTION = "inhibitor-with-level"  # not a problem: a strong inhibitor and a follow-up trough
_CLEAN_INTERACTION_SHARE = 0.03


# --- per-patient simulation -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Component:
    """One prescription of a regimen: a capsule strength and the mg of it per administration."""

    strength_mg: float
    dose_mg: float
    ndc: str
    prescription_id: str


@dataclass(frozen=True)
class _Regimen:
    """Twice-daily tacrolimus, one prescription per capsule strength, written together."""

    components: tuple[_Component, ...]
    start_date: date
    announced: date  # when the prescriptions are recorded
    weight_kg: float

    @property
    def daily_dose_mg(self) -> float:
        return 2 * sum(component.dose_mg for component in self.components)


@dataclass
class _ClaimPlan:
    kind: Literal["refill", "supply-only"]
    date_of_service: date
    days_supply: int
    regimen: _Regimen
    scenario: str | None = None
    anchor: date | None = None  # scenario date: lab gap start, interacting drug start, ...
    variant: int = 0


@dataclass(frozen=True)
class _Slot:
    """What decides which problems fit the next claim."""

    refills: int  # refill claims planned so far
    day: date
    previous: _ClaimPlan | None
    regimen: _Regimen
    last_lab_scenario: dict[str, date]  # lab group -> DOS of the latest scenario that reshaped it
    regimen_changed: bool


@dataclass
class _Draw:
    day: date
    groups: tuple[str, ...]  # trough, renal, hepatic
    baseline: bool = True  # baseline draws get preliminary/corrected/cancelled variants
    trough: float | None = None  # forced values
    creatinine_factor: float | None = None


class _Ids:
    """Readable, seed-specific identifiers (no patient data in claim or prescription ids)."""

    def __init__(self, seed: int) -> None:
        self.tag = hashlib.sha256(f"j7507-synthetic:{seed}".encode()).hexdigest()[:4].upper()
        self.counters: dict[str, Iterator[int]] = defaultdict(lambda: count(1))

    def next(self, prefix: str) -> str:
        return f"{prefix}-{self.tag}{next(self.counters[prefix]):07d}"


_CLOCK = tuple(f"T{minute // 60:02d}:{minute % 60:02d}:00Z" for minute in range(1440))
_ISO_DAYS: dict[int, str] = {}  # ordinal -> "YYYY-MM-DD": formatting dates is the generator's hot spot


def _minutes(day: date, minute: int) -> tuple[int, str]:
    """Sort key (minutes since year 1) and the ISO 8601 UTC string of `minute` past midnight of `day`."""
    ordinal = day.toordinal() + minute // 1440
    minute %= 1440
    iso = _ISO_DAYS.get(ordinal)
    if iso is None:
        iso = _ISO_DAYS[ordinal] = date.fromordinal(ordinal).isoformat()
    return ordinal * 1440 + minute, iso + _CLOCK[minute]


class _Random(random.Random):
    """random.Random with a cheaper randint (one float draw; its bias is far below anything we measure)."""

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))


def _coverage_end(transplant_date: date) -> date:
    """ESRD-only Medicare ends with the 36th month after the transplant month."""
    month_index = transplant_date.year * 12 + transplant_date.month - 1 + 36
    year, month = divmod(month_index, 12)
    return date(year, month + 1, calendar.monthrange(year, month + 1)[1])


def _egfr(creatinine: float, age: int, female: bool) -> float:
    """CKD-EPI 2021 (race-free) from serum creatinine in mg/dL."""
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = creatinine / kappa
    value: float = 142 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.2 * 0.9938**age
    return float(round(value * (1.012 if female else 1.0)))


class _PatientSimulation:
    """One patient's profile, claim plan and events."""

    def __init__(self, rng: random.Random, ids: _Ids, catalog: _Catalog, start: date, usage: Counter[str]) -> None:
        self.rng = rng
        self.usage = usage  # scenarios chosen so far in the dataset
        self.ids = ids
        self.catalog = catalog
        self.start = start
        self.last_day = start + timedelta(days=SPAN_DAYS)
        self.patient_id = ids.next("PT")
        self.events: list[tuple[int, SyntheticEvent]] = []
        self.planted: dict[tuple[str, int], frozenset[str]] = {}
        self.prescriptions: dict[str, Record] = {}  # current state per prescription_id
        self.claim_units: dict[str, float] = {}  # J7507 units per claim id (latest version), for caps
        self._profile()

    # --- profile --------------------------------------------------------------------------------

    def _profile(self) -> None:
        rng = self.rng
        self.payer = rng.choices(PAYERS, [payer.share for payer in PAYERS])[0]
        self.plan_id = rng.choice(self.payer.plan_ids) if self.payer.plan_ids else None
        self.organ = rng.choices(*_ORGANS)[0]
        self.female = rng.random() < 0.4
        self.entitlement: str | None = None
        if self.payer.medicare:  # many kidney recipients have Medicare through ESRD alone
            entitlements = _ENTITLEMENTS_KIDNEY if self.organ == "KIDNEY" else _ENTITLEMENTS_OTHER
            self.entitlement = rng.choices(*entitlements)[0]
        self.age = rng.randint(65, 86) if self.entitlement == "AGE" else rng.randint(22, 64)
        self.weight_kg = round(min(140.0, max(42.0, rng.gauss(80.0 if not self.female else 68.0, 15.0))), 1)
        self._transplant_dates()
        center, prescribers = rng.choice(_TRANSPLANT_CENTERS)
        self.facility = center
        self.prescriber_npi = rng.choice(prescribers)
        if self.payer.specialty_pharmacy_npis:
            self.pharmacy_npi = rng.choice(self.payer.specialty_pharmacy_npis)
            self.billing_npi = _SPECIALTY_BILLING_NPIS[self.pharmacy_npi]
        else:
            self.pharmacy_npi, self.billing_npi = rng.choice(_RETAIL_PHARMACIES)
        self.date_source = "ORDERING_PHYSICIAN" if rng.random() < 0.9 else "MEDICAL_RECORD"
        self.diagnosis_codes = self._diagnoses()
        self.trough_code = _TROUGH if rng.random() < 0.85 else _TROUGH_BY_NAME
        self.egfr_code = rng.choices(_EGFR, [0.8, 0.1, 0.1])[0]
        self.creatinine_base = self._creatinine_base()
        self.prior_auth: Record | None = None
        if self.payer.requires_prior_auth:
            valid_from = self.first_dos - timedelta(days=rng.randint(5, 60))
            self.prior_auth = {
                "number": f"PA{rng.randint(10**8, 10**9 - 1)}",
                "status": "APPROVED",
                "valid_from": valid_from.isoformat(),
                "valid_to": (valid_from + timedelta(days=365)).isoformat(),
            }
        # Brand Prograf: Medicare patients by habit; others only dispensed as written, with a reason
        self.daw = not self.payer.medicare and rng.random() < 0.12
        self.brand = self.daw or (self.payer.medicare and rng.random() < 0.35)
        self.products = self._products()
        self.cadence = 30
        if rng.random() < self.payer.mail_order_share:
            self.cadence = 90
        self.mycophenolate = self._mycophenolate()
        # more rules apply to some patients: Medicare's coverage rules, the liver recipients' liver tests
        self.family_weights = dict(_FAMILY_WEIGHT)
        if self.payer.medicare:
            self.family_weights["coverage"] *= 1.5
        if self.organ == "LIVER":
            self.family_weights["labs"] *= 2

    def _transplant_dates(self) -> None:
        rng, start = self.rng, self.start
        self.in_window = False
        self.esrd_end: date | None = None
        self.part_b_id_from: date | None = None
        draw = rng.random()
        if self.entitlement == "ESRD_ONLY":
            if draw < 0.45:  # the 36 months run out during the simulation
                ends = start + timedelta(days=rng.randint(20, 150))
                month_index = ends.year * 12 + ends.month - 1 - 36
                year, month = divmod(month_index, 12)
                transplant = date(year, month + 1, rng.randint(1, 28))
            elif draw < 0.75:  # ran out long ago: on Part B-ID since
                transplant = start - timedelta(days=rng.randint(1130, 3600))
            else:
                transplant = start - timedelta(days=rng.randint(60, 900))
            self.esrd_end = _coverage_end(transplant)
            if self.esrd_end < start:
                self.part_b_id_from = max(date(2023, 1, 1), self.esrd_end + timedelta(days=1))
            elif self.esrd_end <= self.last_day:
                # most enroll in Part B-ID in time; some lapse for a month or two (natural denials)
                lapse = 0 if rng.random() < 0.6 else rng.randint(25, 80)
                self.part_b_id_from = self.esrd_end + timedelta(days=1 + lapse)
        elif draw < 0.08:
            self.in_window = True
            transplant = start + timedelta(days=rng.randint(0, 100))
        elif draw < 0.25:
            transplant = start - timedelta(days=rng.randint(1, 365))
        elif draw < 0.80:
            transplant = start - timedelta(days=rng.randint(366, 5 * 365))
        else:
            transplant = start - timedelta(days=rng.randint(5 * 365, 20 * 365))
        self.transplant_date = transplant
        self.discharge_date = transplant + timedelta(days=rng.randint(5, 16))
        if self.in_window:
            self.history_start = self.discharge_date - timedelta(days=4)
            self.first_dos = self.discharge_date
        else:
            self.history_start = start + timedelta(days=rng.randint(0, 10))
            self.first_dos = max(self.discharge_date, self.history_start + timedelta(days=rng.randint(2, 25)))

    def _diagnoses(self) -> list[str]:
        rng = self.rng
        codes = [_DIAGNOSIS[self.organ]]
        if self.organ in _REJECTION_CODES and rng.random() < 0.05:
            codes.append(_REJECTION_CODES[self.organ])
        codes += rng.sample(_COMORBIDITIES, rng.choice((0, 0, 1, 2)))
        if rng.random() < 0.15:  # some billing systems drop the dot
            codes = [code.replace(".", "") for code in codes]
        return codes

    def _creatinine_base(self) -> float:
        low, high = (0.9, 1.9) if self.organ == "KIDNEY" else (0.7, 1.4)
        base = round(self.rng.uniform(low, high), 2)
        # keep a stable patient's eGFR clear of the < 30 rule even on a high day
        while base > 0.5 and _egfr(base * 1.08, self.age, self.female) < 33:
            base = round(base - 0.1, 2)
        return base

    def _products(self) -> dict[float, str]:
        """The NDC dispensed for each capsule strength the patient may take."""
        rng, catalog, avoid = self.rng, self.catalog, self.payer.non_preferred_ndcs
        products: dict[float, str] = {}
        for table, use in ((catalog.generics, True), (catalog.brands, self.brand or self.payer.medicare)):
            for strength, ndcs in table.items():
                allowed = [ndc for ndc in ndcs if ndc not in avoid]
                # generics first; brand for every strength if the patient takes brand, else where no generic exists
                if use and allowed and (self.brand or strength not in products):
                    products[strength] = rng.choice(allowed)
        return products

    def _mycophenolate(self) -> tuple[str, float, str, float] | None:
        """(ingredient, mg per dose twice daily, HCPCS, mg per HCPCS unit) or None."""
        draw = self.rng.random()
        if draw < 0.75:
            return "mycophenolate mofetil", self.rng.choice((500.0, 750.0, 1000.0)), "J7517", 250.0
        if draw < 0.85:
            return "mycophenolic acid", self.rng.choice((360.0, 720.0)), "J7518", 180.0
        return None

    # --- dosing -------------------------------------------------------------------------------------

    def _early(self, day: date) -> bool:
        return (day - self.transplant_date).days < 90

    def _dose_for(self, day: date) -> float:
        """mg per administration (twice daily) for the phase after transplant, in 0.5 mg steps."""
        early, later = _DOSE_PER_KG.get(self.organ, _DOSE_PER_KG["LIVER"])
        low, high = early if self._early(day) else later
        daily = self.weight_kg * self.rng.uniform(low, high)
        return max(0.5, round(daily) / 2)

    def _regimen(self, dose_mg: float, start_date: date, announced: date) -> _Regimen:
        strengths = self.products
        five = 5.0 in strengths
        whole, half = int(dose_mg), dose_mg - int(dose_mg)
        parts: list[tuple[float, float]] = []
        if five and whole >= 5 and not half:
            parts.append((5.0, float(whole // 5 * 5)))
            if whole % 5:
                parts.append((1.0, float(whole % 5)))
        elif half and whole <= 2 and self.rng.random() < 0.4:
            parts.append((0.5, dose_mg))  # all 0.5 mg capsules
        else:
            if whole:
                parts.append((1.0, float(whole)))
            if half:
                parts.append((0.5, 0.5))
        components = tuple(
            _Component(strength, dose, strengths[strength], self.ids.next("RX")) for strength, dose in parts
        )
        return _Regimen(components, start_date, announced, self.weight_kg)

    # --- plan ----------------------------------------------------------------------------------------

    def _plan(self) -> list[_ClaimPlan]:
        rng = self.rng
        plans: list[_ClaimPlan] = []
        start_dose = self._dose_for(self.first_dos)
        if self.in_window:
            regimen = self._regimen(start_dose, self.discharge_date - timedelta(days=2), self.history_start)
        else:
            # the discharge prescription, or the latest dose change
            started = max(
                self.discharge_date - timedelta(days=2), self.first_dos - timedelta(days=rng.randint(15, 400))
            )
            regimen = self._regimen(start_dose, started, self.history_start)
        date_of_service = self.first_dos
        previous: _ClaimPlan | None = None
        last_lab: dict[str, date] = {}
        refills = 0
        while date_of_service <= self.last_day:
            # a dose change is decided first: which problems fit depends on the capsules in use
            changed = previous is not None and rng.random() < (0.35 if self._early(date_of_service) else 0.1)
            if changed:
                regimen = self._regimen(self._dose_for(date_of_service), date_of_service, date_of_service)
            scenario = self._pick_scenario(_Slot(refills, date_of_service, previous, regimen, last_lab, changed))
            if scenario == "early-refill" and previous is not None:
                left = rng.randint(self.payer.refill_window_days + 2, self.payer.refill_window_days + 8)
                date_of_service = previous.date_of_service + timedelta(days=previous.days_supply - left)
            elif scenario == "early-delivery":
                date_of_service = self.discharge_date - timedelta(days=rng.randint(1, 2))
            if changed and previous is not None:
                # written after the previous fill, effective by this one
                earliest = max(previous.date_of_service + timedelta(days=3), date_of_service - timedelta(days=4))
                started = earliest + timedelta(days=rng.randint(0, max(0, (date_of_service - earliest).days)))
                regimen = replace(regimen, start_date=started, announced=started - timedelta(days=1))
            days_supply = min(self.cadence, self.payer.days_supply_limit(date_of_service))
            if scenario == "days-supply-over-limit":
                days_supply = rng.choice((60, 90))
            if scenario is None and "trough" not in last_lab and rng.random() < _CLEAN_INTERACTION_SHARE:
                scenario = _CLEAN_INTERACTION
            plan = _ClaimPlan("refill", date_of_service, days_supply, regimen, scenario)
            self._prepare(plan, previous)
            if scenario == _CLEAN_INTERACTION:
                last_lab["trough"] = date_of_service
            elif scenario is not None and SCENARIOS[scenario].lab_group:
                last_lab[SCENARIOS[scenario].lab_group or ""] = date_of_service
            plans.append(plan)
            if scenario == "lapsed-prescription":  # renewed only after the claim
                renewed = date_of_service + timedelta(days=rng.randint(2, 4))
                regimen = replace(
                    regimen,
                    components=tuple(replace(c, prescription_id=self.ids.next("RX")) for c in regimen.components),
                    start_date=renewed,
                    announced=renewed,
                )
            early_by = rng.randint(0, self.payer.refill_window_days - 2)
            next_date = date_of_service + timedelta(days=days_supply - early_by + rng.choice((0, 0, 0, 2, 4)))
            if self.mycophenolate and rng.random() < 0.03 and (next_date - date_of_service).days > 16:
                # a mycophenolate-only fill between tacrolimus refills: no J7507 line
                supply_day = date_of_service + timedelta(days=rng.randint(6, 12))
                plans.append(_ClaimPlan("supply-only", supply_day, 30, regimen))
            previous = plan
            refills += 1
            date_of_service = next_date
        return plans

    def _pick_scenario(self, slot: _Slot) -> str | None:
        rng = self.rng
        if slot.refills == 0 and self.in_window and rng.random() < 0.12:
            return "early-delivery"
        if rng.random() >= PROBLEM_SHARE:
            return None
        # a family by weight, then one of its problems that fits; a family with none is dropped
        families = self.family_weights.copy()
        while families:
            family = rng.choices(list(families), list(families.values()))[0]
            names = [name for name in _BY_FAMILY[family] if self._eligible(name, slot)]
            if names:
                # problems that rarely fit (liver-only, one payer's) are preferred when they do, so every
                # rule shows up even in a few hundred patients: weigh down the ones used often so far
                weights = [SCENARIOS[name].weight / (1 + self.usage[name]) for name in names]
                chosen = rng.choices(names, weights)[0]
                self.usage[chosen] += 1
                return chosen
            del families[family]
        return None

    def _eligible(self, name: str, slot: _Slot) -> bool:
        day, previous, regimen = slot.day, slot.previous, slot.regimen
        strengths = {component.strength_mg for component in regimen.components}
        medicare = self.payer.medicare
        gap = (day - previous.date_of_service).days if previous else 999
        group = SCENARIOS[name].lab_group
        if group is not None:
            last_lab = slot.last_lab_scenario.get(group)
            if gap < 12 or (last_lab is not None and (day - last_lab).days <= _LAB_SCENARIO_SPACING_DAYS):
                return False
        lab_history = (day - self.history_start).days
        match name:
            case "units-as-capsules":
                return bool(strengths - {1.0})
            case "lookalike-ndc":
                return any(strength in self.catalog.lookalikes for strength in strengths)
            case "fractional-units":
                return 0.5 in strengths
            case "days-supply-over-limit":
                return self.payer.days_supply_limit(day) < 60
            case "strength-mismatch":
                return len(regimen.components) == 1 and any(
                    other in self.products for other in self._other_strengths(regimen.components[0].strength_mg)
                )
            case "early-refill":
                return previous is not None and previous.days_supply >= 30
            case "lapsed-prescription":
                return not slot.regimen_changed  # it re-publishes the orders in use
            case "weight-slip":  # the rule divides each prescription's own daily dose by the weight
                heaviest = max(component.dose_mg for component in regimen.components) * 2
                return not slot.regimen_changed and heaviest / (regimen.weight_kg / 10) > 0.45
            case "early-delivery":
                return False  # chosen only for a fresh transplant's first claim, above
            case "kx-missing" | "part-a-missing" | "part-b-inactive" | "ga-without-abn":
                return medicare
            case "esrd-flag-missing":
                return (
                    medicare
                    and self.esrd_end is not None
                    and day > self.esrd_end
                    and self.part_b_id_from is not None
                    and self.part_b_id_from <= day
                )
            case "cyclosporine-active" | "er-tacrolimus-active" | "sirolimus-liver-heart":
                return gap >= 8 and (name != "sirolimus-liver-heart" or self.organ in ("LIVER", "HEART", "HEART_LUNG"))
            case "trough-gap" | "renal-gap":
                return lab_history >= 97
            case "hepatic-gap":
                return lab_history >= 97 and self.organ == "LIVER"
            case "trough-out-of-range" | "renal-decline" | "inhibitor-without-level":
                return lab_history >= 7
            case "prior-auth-missing" | "prior-auth-pending":
                return self.payer.requires_prior_auth
            case "retail-pharmacy":
                return bool(self.payer.specialty_pharmacy_npis)
            case "brand-first":
                return self.payer.step_therapy and slot.refills == 0 and not self.daw
            case "non-preferred-ndc":
                return any(self._non_preferred_for(strength) for strength in strengths)
        return True

    def _non_preferred_for(self, strength: float) -> str | None:
        """A non-preferred NDC of the payer's formulary with this strength, if any."""
        for ndc in self.payer.non_preferred_ndcs:
            if self._product_strength(ndc) == strength and ndc != self.products.get(strength):
                return ndc
        return None

    def _product_strength(self, ndc: str) -> float | None:
        for table in (self.catalog.generics, self.catalog.brands):
            for strength, ndcs in table.items():
                if ndc in ndcs:
                    return strength
        return None

    @staticmethod
    def _other_strengths(strength: float) -> tuple[float, ...]:
        return (1.0,) if strength != 1.0 else (0.5,)

    def _prepare(self, plan: _ClaimPlan, previous: _ClaimPlan | None) -> None:
        """Draw the scenario's dates now, so labs and prescriptions can be shaped around the claim."""
        rng, day = self.rng, plan.date_of_service
        # just-in-time records come after the previous claim
        after_previous = previous.date_of_service + timedelta(days=3) if previous else self.history_start
        plan.variant = rng.randint(0, 9)
        match plan.scenario:
            case "trough-gap" | "renal-gap" | "hepatic-gap":
                plan.anchor = day - timedelta(days=91 + rng.randint(0, 4))  # last draw before the gap
            case "trough-out-of-range" | "renal-decline":
                plan.anchor = max(after_previous, day - timedelta(days=rng.randint(2, 5)))
            case "inhibitor-without-level":
                plan.anchor = max(after_previous, day - timedelta(days=rng.randint(3, 8)))
            case "inhibitor-with-level":
                plan.anchor = max(after_previous, day - timedelta(days=rng.randint(10, 20)))
            case "sirolimus-liver-heart":
                plan.anchor = max(after_previous, day - timedelta(days=rng.randint(5, 30)))
            case "er-tacrolimus-active":
                plan.anchor = max(after_previous, day - timedelta(days=rng.randint(2, 7)))
            case "lapsed-prescription":  # the end of the orders in use, recorded after they were
                ended = day - timedelta(days=rng.randint(2, 10))
                plan.anchor = max(after_previous, plan.regimen.announced + timedelta(days=1), ended)

    # --- run -----------------------------------------------------------------------------------------

    def run(self) -> list[tuple[int, SyntheticEvent]]:
        plans = self._plan()
        self._emit_standing_medications()
        self._emit_labs(plans)
        current: _Regimen | None = None
        previous_day: date | None = None
        for plan in plans:
            if plan.regimen is not current:
                self._emit_regimen(plan.regimen, current)
                current = plan.regimen
            if plan.kind == "supply-only":
                self._emit_claim(plan, self.ids.next("CLM"), 1, self._claim_time(plan), None)
                continue
            self._emit_context_before(plan, previous_day)
            claim_time = self._claim_time(plan)
            claim_id = self.ids.next("CLM")
            scenario = plan.scenario if plan.scenario in SCENARIOS else None
            if scenario == "filed-late":  # the pharmacy billed it after the payer's limit had passed
                claim_time += (self.payer.timely_filing_days + self.rng.randint(3, 60)) * 1440
            if scenario == "duplicate-claim":  # billed again under a new claim id: the copy is the problem
                original = self._emit_claim(plan, claim_id, 1, claim_time, None)
                duplicate_time = claim_time + self.rng.randint(60, 300)
                self._emit_claim(plan, self.ids.next("CLM"), 1, duplicate_time, None, copy_of=original)
            else:
                self._emit_claim(plan, claim_id, 1, claim_time, scenario)
                self._maybe_resubmit(plan, claim_id, claim_time, scenario)
            self._emit_context_after(plan, claim_time)
            previous_day = plan.date_of_service
        return self.events

    def _claim_time(self, plan: _ClaimPlan) -> int:
        """Minutes after midnight of the DOS: pharmacies bill on the day, a few the next day."""
        lag = 1440 if self.rng.random() < 0.12 else 0
        return lag + self.rng.randint(660, 1140)

    def _emit(self, kind: EventKind, day: date, minute: int, record: Record) -> None:
        key, stamp = _minutes(day, minute)
        record["event_time"] = stamp
        # claims sort after context events of the same minute: a claim relies on what precedes it
        self.events.append((key * 2 + (kind == "claim"), SyntheticEvent(kind, self.patient_id, record)))

    # --- prescriptions -------------------------------------------------------------------------------

    def _publish(self, prescription_id: str, day: date, minute: int, **changes: Any) -> None:
        """Record a prescription event; later events with the same id replace earlier ones."""
        state = self.prescriptions[prescription_id]
        state.update(changes)
        self._emit("prescription", day, minute, {"event_id": None, "event_time": None, **state})

    def _new_prescription(
        self,
        day: date,
        minute: int,
        ingredient: str,
        start_date: date,
        strength_mg: float | None,
        dose_mg: float | None,
        doses_per_day: int | None,
        **fields: Any,
    ) -> str:
        """Record a new order (ACTIVE, oral, immediate release unless `fields` say otherwise)."""
        prescription_id = fields.pop("prescription_id", None) or self.ids.next("RX")
        end_date = fields.pop("end_date", None)
        self.prescriptions[prescription_id] = {
            "prescription_id": prescription_id,
            "patient_id": self.patient_id,
            "status": "ACTIVE",
            "ingredient": ingredient,
            "formulation": "IMMEDIATE_RELEASE",
            "route": "ORAL",
            "strength_mg": strength_mg,
            "dose_mg": dose_mg,
            "doses_per_day": doses_per_day,
            "days_supply": 30,
            "start_date": start_date.isoformat(),
            "end_date": end_date.isoformat() if end_date else None,
            "dosing_weight_kg": None,
            "prescriber_npi": self.prescriber_npi,
            "dispense_as_written": False,
            "clinical_justification": None,
            "rxnorm_code": None,
            "ndc": None,
            **fields,
        }
        self._publish(prescription_id, day, minute)
        return prescription_id

    def _emit_regimen(self, regimen: _Regimen, previous: _Regimen | None) -> None:
        minute = self.rng.randint(540, 1020)
        justification = (
            "Brand Prograf: trough variability after a generic switch; transplant team requires brand."
            if self.daw
            else None
        )
        for c in regimen.components:
            self._new_prescription(
                regimen.announced,
                minute,
                "tacrolimus",
                regimen.start_date,
                c.strength_mg,
                c.dose_mg,
                2,
                prescription_id=c.prescription_id,
                days_supply=self.cadence,
                dispense_as_written=self.daw,
                clinical_justification=justification,
                ndc=c.ndc,
                dosing_weight_kg=regimen.weight_kg,
            )
        if previous is None:
            return
        for component in previous.components:
            if self.prescriptions[component.prescription_id]["status"] != "ACTIVE":
                continue  # already ended (a lapsed order)
            status = "STOPPED" if self.rng.random() < 0.8 else "COMPLETED"
            end = (regimen.start_date - timedelta(days=1)).isoformat()
            self._publish(component.prescription_id, regimen.announced, minute + 5, status=status, end_date=end)

    def _emit_standing_medications(self) -> None:
        """Other immunosuppressants and long-term drugs: none of them trigger a rule."""
        rng, day = self.rng, self.history_start
        early = self._early(day)
        orders: list[tuple[str, float, float, int]] = []  # ingredient, strength, dose, doses per day
        if self.mycophenolate:
            ingredient, dose, _, _ = self.mycophenolate
            capsule = {500.0: 500.0, 1000.0: 500.0, 750.0: 250.0}.get(dose, 360.0)
            orders.append((ingredient, capsule, dose, 2))
        if early or rng.random() < 0.7:
            orders.append(("prednisone", 5.0, 20.0 if early else 5.0, 1))
        if self.organ == "KIDNEY" and rng.random() < 0.04:
            orders.append(("sirolimus", 1.0, 2.0, 1))  # with tacrolimus in a kidney: no rule against it
        if self.organ == "HEART" and rng.random() < 0.15:
            orders.append(("everolimus", 0.75, 0.75, 2))
        if rng.random() < 0.06:
            orders.append(("diltiazem", 120.0, 120.0, 1))  # a moderate CYP3A4 inhibitor, outside the strong list
        started = self.discharge_date - timedelta(days=1)
        for ingredient, strength, dose, per_day in orders:
            delayed = "OTHER" if ingredient == "mycophenolic acid" else "IMMEDIATE_RELEASE"  # delayed-release
            self._new_prescription(
                day, rng.randint(480, 600), ingredient, started, strength, dose, per_day, formulation=delayed
            )
        if early:  # infection prophylaxis for the first months
            for ingredient, strength in (("valganciclovir", 450.0), ("sulfamethoxazole-trimethoprim", 800.0)):
                ends = self.transplant_date + timedelta(days=180)
                self._new_prescription(
                    day, rng.randint(480, 600), ingredient, started, strength, strength, 1, end_date=ends
                )

    def _context_day(self, plan: _ClaimPlan, previous_day: date | None) -> date:
        """A day shortly before the claim and after the previous one (for records created just in time)."""
        day = plan.date_of_service - timedelta(days=self.rng.randint(1, 3))
        if previous_day is not None:
            day = max(day, previous_day + timedelta(days=2))
        day = max(day, plan.regimen.announced + timedelta(days=1))
        return min(day, plan.date_of_service)

    def _emit_context_before(self, plan: _ClaimPlan, previous_day: date | None) -> None:
        rng, day = self.rng, plan.date_of_service
        minute = rng.randint(420, 600)
        match plan.scenario:
            case "cyclosporine-active":
                recorded = self._context_day(plan, previous_day)
                if plan.variant < 3:  # eye drops: cyclosporine, but justified (INFO only)
                    since = day - timedelta(days=rng.randint(30, 400))
                    self._new_prescription(
                        recorded,
                        minute,
                        "cyclosporine",
                        since,
                        None,
                        None,
                        2,
                        formulation="OTHER",
                        route="OTHER",
                        clinical_justification="Ophthalmic emulsion 0.05% for dry eye; negligible systemic exposure.",
                    )
                else:  # the order from before the switch to tacrolimus was never closed
                    self._new_prescription(recorded, minute, "cyclosporine", self.discharge_date, 100.0, 150.0, 2)
            case "er-tacrolimus-active":
                assert plan.anchor is not None
                justification = (
                    "IR-to-Envarsus XR conversion under transplant team supervision." if plan.variant < 2 else None
                )
                ndc = self.catalog.lookalikes.get(1.0, (None,))[0]
                once_daily = float(max(1, round(plan.regimen.daily_dose_mg * 0.7)))  # ER conversion factor
                self._new_prescription(
                    plan.anchor - timedelta(days=1),
                    minute,
                    "tacrolimus",
                    plan.anchor,
                    1.0,
                    once_daily,
                    1,
                    formulation="EXTENDED_RELEASE",
                    clinical_justification=justification,
                    ndc=ndc,
                )
            case "sirolimus-liver-heart":
                assert plan.anchor is not None
                self._new_prescription(plan.anchor - timedelta(days=1), minute, "sirolimus", plan.anchor, 1.0, 2.0, 1)
            case "inhibitor-without-level" | "inhibitor-with-level":
                assert plan.anchor is not None
                ingredient, course = rng.choice(_INTERACTING_COURSES)
                ends = plan.anchor + timedelta(days=course)
                self._new_prescription(
                    plan.anchor - timedelta(days=1),
                    minute,
                    ingredient,
                    plan.anchor,
                    None,
                    None,
                    2,
                    days_supply=min(course, 30),
                    end_date=ends,
                )
            case "lapsed-prescription":
                assert plan.anchor is not None
                for component in plan.regimen.components:
                    ended = plan.anchor.isoformat()
                    self._publish(component.prescription_id, plan.anchor, minute, status="COMPLETED", end_date=ended)
            case "weight-slip":  # 82 kg keyed as 8.2 kg on a re-signed order
                slipped = round(plan.regimen.weight_kg / 10, 1)
                recorded = self._context_day(plan, previous_day)
                for component in plan.regimen.components:
                    self._publish(component.prescription_id, recorded, minute, dosing_weight_kg=slipped)

    def _emit_context_after(self, plan: _ClaimPlan, claim_time: int) -> None:
        """Clean-up a pharmacist or clinician would do after the claim (so later claims are clean)."""
        day = plan.date_of_service
        minute = claim_time + self.rng.randint(1, 3) * 1440
        cleanup_day = day + timedelta(days=minute // 1440)
        match plan.scenario:
            case "cyclosporine-active" if plan.variant >= 3:
                self._stop_latest("cyclosporine", day, minute, cleanup_day)
            case "er-tacrolimus-active":
                self._stop_latest("tacrolimus", day, minute, cleanup_day, formulation="EXTENDED_RELEASE")
            case "sirolimus-liver-heart":
                self._stop_latest("sirolimus", day, minute, cleanup_day)
            case "weight-slip":
                for component in plan.regimen.components:
                    self._publish(component.prescription_id, day, minute, dosing_weight_kg=plan.regimen.weight_kg)

    def _stop_latest(self, ingredient: str, day: date, minute: int, end: date, formulation: str | None = None) -> None:
        for prescription_id, state in reversed(self.prescriptions.items()):
            if state["ingredient"] == ingredient and (formulation is None or state["formulation"] == formulation):
                self._publish(prescription_id, day, minute, status="STOPPED", end_date=end.isoformat())
                return

    # --- labs ---------------------------------------------------------------------------------------

    def _emit_labs(self, plans: list[_ClaimPlan]) -> None:
        rng = self.rng
        suppressed: list[tuple[str, date, date]] = []
        draws: list[_Draw] = []
        every_group = ("trough", "renal", "hepatic") if self.organ == "LIVER" else ("trough", "renal")
        for plan in plans:
            day, anchor = plan.date_of_service, plan.anchor
            recheck = day + timedelta(days=rng.randint(1, 4))
            match plan.scenario:
                case "trough-gap" | "renal-gap" | "hepatic-gap":
                    assert anchor is not None
                    group = SCENARIOS[plan.scenario].lab_group or ""
                    suppressed.append((group, anchor + timedelta(days=1), day))
                    draws += [_Draw(anchor, (group,), baseline=False), _Draw(recheck, (group,), baseline=False)]
                case "trough-out-of-range":
                    assert anchor is not None
                    suppressed.append(("trough", anchor, day))
                    draws += [
                        _Draw(anchor, ("trough",), False, trough=self._trough_outside(anchor)),
                        _Draw(recheck, ("trough",), False),
                    ]
                case "renal-decline":
                    assert anchor is not None
                    suppressed.append(("renal", anchor, day))
                    factor = rng.uniform(1.75, 2.3)
                    draws += [
                        _Draw(anchor, ("renal",), False, creatinine_factor=factor),
                        _Draw(recheck, ("renal",), False),
                    ]
                case "inhibitor-without-level":
                    assert anchor is not None
                    suppressed.append(("trough", anchor, day))
                    draws.append(_Draw(recheck, ("trough",), baseline=False))
                case "inhibitor-with-level":
                    assert anchor is not None
                    level_day = anchor + timedelta(days=rng.randint(2, 5))
                    suppressed.append(("trough", anchor, day))  # the follow-up level is the one in between
                    draws.append(_Draw(min(level_day, day - timedelta(days=1)), ("trough",), baseline=False))
        day = self.history_start
        while day <= self.last_day + timedelta(days=10):
            groups = tuple(
                group for group in every_group if not any(g == group and lo <= day <= hi for g, lo, hi in suppressed)
            )
            if groups:
                draws.append(_Draw(day, groups))
            since = (day - self.transplant_date).days
            day += timedelta(
                days=rng.randint(6, 9) if since < 60 else rng.randint(12, 18) if since < 150 else rng.randint(21, 42)
            )
        for draw in draws:
            self._emit_draw(draw, suppressed)

    def _trough_usual(self, day: date) -> float:
        early, later = _TROUGH_USUAL.get(self.organ, _DEFAULT_TROUGH_USUAL)
        low, high = early if self._early(day) else later
        return round(self.rng.uniform(low, high), 1)

    def _trough_outside(self, day: date) -> float:
        low, high = self.catalog.trough_targets.trough_range(self.organ, self._early(day))
        if self.rng.random() < 0.5:
            return round(max(1.0, low - self.rng.uniform(0.6, 2.5)), 1)
        return round(high + self.rng.uniform(1.0, 8.0), 1)

    def _emit_draw(self, draw: _Draw, suppressed: list[tuple[str, date, date]]) -> None:
        rng, day = self.rng, draw.day
        minute = rng.randint(420, 660)
        effective = _minutes(day, minute)[1]
        recorded = minute + rng.randint(150, 420)
        for group in draw.groups:
            if group == "trough":
                value = draw.trough if draw.trough is not None else self._trough_usual(day)
                # a clotted specimen: cancelled, redrawn a day or two later (never the first draw: no level before it)
                if draw.baseline and day > self.history_start and rng.random() < 0.02:
                    self._emit_result(day, effective, recorded, self.trough_code, None, "CANCELLED")
                    redraw = day + timedelta(days=rng.randint(1, 2))
                    if not any(g == "trough" and lo <= redraw <= hi for g, lo, hi in suppressed):
                        again = _minutes(redraw, minute)[1]
                        self._emit_result(redraw, again, recorded, self.trough_code, self._trough_usual(redraw))
                else:
                    self._emit_result(day, effective, recorded, self.trough_code, value, variants=draw.baseline)
            elif group == "renal":
                factor = draw.creatinine_factor or rng.uniform(0.93, 1.07)
                creatinine = round(self.creatinine_base * factor, 2)
                self._emit_result(day, effective, recorded, _CREATININE, creatinine, variants=draw.baseline)
                egfr = _egfr(creatinine, self.age, self.female)
                self._emit_result(day, effective, recorded, self.egfr_code, egfr)
                if rng.random() < 0.1:
                    self._emit_result(day, effective, recorded, _POTASSIUM, round(rng.uniform(3.6, 5.1), 1))
            else:
                for loinc, display, unit, low, high, decimals in _HEPATIC:
                    value = float(round(rng.uniform(low, high), decimals))
                    self._emit_result(day, effective, recorded, (loinc, display, unit), value)

    def _emit_result(
        self,
        day: date,
        effective: str,
        recorded: int,
        code: tuple[str, str, str],
        value: float | None,
        status: str = "FINAL",
        *,
        variants: bool = False,
    ) -> None:
        """One result; baseline troughs and creatinines are sometimes preliminary first or corrected later."""
        rng = self.rng
        loinc, display, unit = code
        record = {
            "event_id": None,
            "event_time": None,
            "observation_id": self.ids.next("OBS"),
            "patient_id": self.patient_id,
            "loinc_code": loinc,
            "display": display,
            "value": value,
            "unit": unit,
            "effective_time": effective,
            "status": status,
        }
        variant = rng.random() if variants else 1.0
        if variant < 0.08:  # preliminary first, final later
            self._emit("lab", day, recorded - rng.randint(30, 90), {**record, "status": "PRELIMINARY"})
            self._emit("lab", day, recorded + rng.randint(240, 1400), record)
        elif variant < 0.11 and code is self.trough_code:
            self._emit("lab", day, recorded, record)
            corrected = self._trough_usual(day)  # a transcription fix, still a usual value
            later = recorded + rng.randint(1, 4) * 1440
            self._emit("lab", day, later, {**record, "value": corrected, "status": "CORRECTED"})
        else:
            self._emit("lab", day, recorded, record)

    # --- claims ---------------------------------------------------------------------------------------

    def _coverage(self, day: date) -> Record | None:
        if not self.payer.medicare:
            return None
        ended = self.esrd_end is not None and day > self.esrd_end
        return {
            "part_a_at_transplant": True,
            "part_b_active": not ended,
            "entitlement": self.entitlement,
            "part_b_id_enrolled": self.part_b_id_from is not None and self.part_b_id_from <= day,
        }

    def _line(
        self, number: int, code: str, modifiers: list[str], units: float, price: float, day: date, **ndc: Any
    ) -> Record:
        return {
            "line_number": number,
            "hcpcs_code": code,
            "modifiers": modifiers,
            "units": units,
            "charge_amount": f"{units * price:.2f}",
            "date_of_service": day.isoformat(),
            "ndc": ndc.get("ndc"),
            "ndc_quantity": ndc.get("ndc_quantity"),
            "ndc_unit": ndc.get("ndc_unit"),
            "days_supply": ndc.get("days_supply"),
            "prescription_id": ndc.get("prescription_id"),
        }

    def _build_claim(self, plan: _ClaimPlan, claim_id: str, version: int, scenario: str | None) -> Record:
        rng, day, days = self.rng, plan.date_of_service, plan.days_supply
        medicare = self.payer.medicare
        kx = ["KX"] if medicare else []
        lines: list[Record] = []
        if plan.kind == "refill":
            named = len(plan.regimen.components) > 1 or rng.random() < 0.85
            for component in plan.regimen.components:
                quantity = component.dose_mg / component.strength_mg * 2 * days
                price = 8.1 if component.ndc in self.catalog.brand_ndcs else 1.9  # $ per mg
                lines.append(
                    self._line(
                        len(lines) + 1,
                        "J7507",
                        list(kx),
                        quantity * component.strength_mg,
                        price,
                        day,
                        ndc=component.ndc,
                        ndc_quantity=quantity,
                        ndc_unit="UN",
                        days_supply=days,
                        prescription_id=component.prescription_id if named else None,
                    )
                )
        if self.mycophenolate and (plan.kind == "supply-only" or rng.random() < 0.25):
            _, dose, code, unit_mg = self.mycophenolate
            lines.append(self._line(len(lines) + 1, code, list(kx), dose * 2 * days / unit_mg, 2.4, day))
        if medicare and (plan.kind == "supply-only" or rng.random() < 0.6):
            fee = "Q0510" if (day - self.transplant_date).days <= 30 else "Q0511"
            lines.append(self._line(len(lines) + 1, fee, [], 1.0, 24.0, day))
        claim: Record = {
            "event_id": None,
            "event_time": None,
            "claim_id": claim_id,
            "claim_version": version,
            "patient_id": self.patient_id,
            "payer": {"payer_id": self.payer.payer_id, "payer_type": self.payer.payer_type, "plan_id": self.plan_id},
            "coverage": self._coverage(day),
            "transplant": {
                "organ": self.organ,
                "transplant_date": self.transplant_date.isoformat(),
                "discharge_date": self.discharge_date.isoformat(),
                "facility": self.facility,
                "date_source": self.date_source,
            },
            "diagnosis_codes": list(self.diagnosis_codes),
            "prior_authorization": dict(self.prior_auth) if self.prior_auth else None,
            "abn_on_file": False,
            "billing_provider_npi": self.billing_npi,
            "ordering_provider_npi": self.prescriber_npi,
            "dispensing_pharmacy_npi": self.pharmacy_npi,
            "lines": lines,
        }
        if scenario is not None:
            self._break(claim, plan, scenario)
        return claim

    def _break(self, claim: Record, plan: _ClaimPlan, scenario: str) -> None:
        """Give a clean claim its deliberate problem."""
        rng = self.rng
        j7507 = [line for line in claim["lines"] if line["hcpcs_code"] == "J7507"]
        line = rng.choice(j7507)
        strength = {c.ndc: c.strength_mg for c in plan.regimen.components}
        transplant = claim["transplant"]
        match scenario:
            case "units-as-capsules":
                line = next(line for line in j7507 if strength[line["ndc"]] != 1.0)
                line["units"] = line["ndc_quantity"]
            case "lookalike-ndc":
                candidates = [line for line in j7507 if strength[line["ndc"]] in self.catalog.lookalikes]
                line = rng.choice(candidates)
                line["ndc"] = rng.choice(self.catalog.lookalikes[strength[line["ndc"]]])
            case "ndc-missing":
                line.update(ndc=None, ndc_quantity=None, ndc_unit=None)
            case "ndc-typo":
                line["ndc"] = self.catalog.typo_of(line["ndc"])
            case "fractional-units":
                line = next(line for line in j7507 if strength[line["ndc"]] == 0.5)
                line["ndc_quantity"] += 1
                line["units"] = line["ndc_quantity"] * 0.5
            case "modifier-25":
                line["modifiers"].append("25")
            case "duplicate-line":
                claim["lines"].append(
                    {**j7507[0], "modifiers": list(j7507[0]["modifiers"]), "line_number": len(claim["lines"]) + 1}
                )
            case "strength-mismatch":
                other = next(s for s in self._other_strengths(strength[line["ndc"]]) if s in self.products)
                line.update(ndc=self.products[other], ndc_quantity=line["units"] / other)
            case "quantity-over" | "quantity-under":
                step = 2 if strength[line["ndc"]] == 0.5 else 1  # keep units whole
                factor = 1.5 if scenario == "quantity-over" else 0.5
                quantity = round(line["ndc_quantity"] * factor / step) * step
                line.update(ndc_quantity=float(quantity), units=quantity * strength[line["ndc"]])
                line["charge_amount"] = f"{line['units'] * 1.9:.2f}"
            case "transplant-date-missing":
                if plan.variant < 2:
                    claim["transplant"] = None
                else:
                    transplant["transplant_date"] = None
                if plan.variant == 9:  # a few billers drop KX with the date, most keep it
                    for each in j7507:
                        each["modifiers"] = [modifier for modifier in each["modifiers"] if modifier != "KX"]
            case "transplant-date-typo":  # the refill date keyed as the transplant date
                transplant["transplant_date"] = plan.date_of_service.isoformat()
            case "discharge-date-typo":  # a readmission's discharge date instead of the transplant stay's
                transplant["discharge_date"] = (plan.date_of_service + timedelta(days=rng.randint(1, 20))).isoformat()
            case "uncovered-diagnosis":
                claim["diagnosis_codes"] = [rng.choice(_UNCOVERED_DIAGNOSES)]
            case "kx-missing":
                for each in j7507:
                    each["modifiers"].remove("KX")
            case "part-a-missing":
                claim["coverage"]["part_a_at_transplant"] = False
            case "part-b-inactive":
                claim["coverage"].update(part_b_active=False, part_b_id_enrolled=False)
            case "esrd-flag-missing":
                claim["coverage"]["part_b_id_enrolled"] = False
            case "ga-without-abn":
                line["modifiers"] += ["GA", "GZ"] if plan.variant < 3 else ["GA"]
                claim["abn_on_file"] = plan.variant < 3
            case "prior-auth-missing":
                if plan.variant < 4:
                    claim["prior_authorization"] = None
                elif plan.variant < 7:
                    expired = plan.date_of_service - timedelta(days=rng.randint(1, 20))
                    claim["prior_authorization"].update(
                        valid_to=expired.isoformat(), valid_from=(expired - timedelta(days=180)).isoformat()
                    )
                else:
                    claim["prior_authorization"]["status"] = "DENIED"
            case "prior-auth-pending":
                claim["prior_authorization"].update(status="PENDING", valid_from=None, valid_to=None)
            case "retail-pharmacy":
                pharmacy, billing = rng.choice(_RETAIL_PHARMACIES)
                claim.update(dispensing_pharmacy_npi=pharmacy, billing_provider_npi=billing)
            case "brand-first":
                for each in j7507:
                    each["ndc"] = self.catalog.brands[strength[each["ndc"]]][0]
            case "non-preferred-ndc":
                line = next(each for each in j7507 if self._non_preferred_for(strength[each["ndc"]]))
                line["ndc"] = self._non_preferred_for(strength[line["ndc"]])

    def _planted(self, claim: Record, plan: _ClaimPlan, scenario: str | None) -> frozenset[str]:
        rules: set[str] = set()
        if not any(line["hcpcs_code"] == "J7507" for line in claim["lines"]):
            return frozenset()  # skipped by the worker
        if scenario is not None:
            rules.add(SCENARIOS[scenario].rule_id)
            kx_kept = any("KX" in line["modifiers"] for line in claim["lines"] if line["hcpcs_code"] == "J7507")
            if scenario in ("transplant-date-missing", "transplant-date-typo") and kx_kept and self.payer.medicare:
                rules.add("kx-modifier-unsupported")
        coverage = claim["coverage"]
        # a lapsed ESRD-only benefit, judged from the claim as sent (its transplant date may be broken)
        transplant = claim["transplant"]
        if (
            coverage
            and coverage["entitlement"] == "ESRD_ONLY"
            and not coverage["part_b_id_enrolled"]
            and transplant
            and transplant["organ"] == "KIDNEY"
            and transplant["transplant_date"]
            and plan.date_of_service > _coverage_end(date.fromisoformat(transplant["transplant_date"]))
        ):
            rules.add("esrd-coverage-ended")
        cap = self.payer.lifetime_units_cap
        if cap is not None:
            total = sum(units for claim_id, units in self.claim_units.items() if claim_id != claim["claim_id"])
            for line in claim["lines"]:
                if line["hcpcs_code"] == "J7507":
                    total += line["units"]
                    if total > cap:
                        rules.add("lifetime-cap-exceeded")
        return frozenset(rules)

    def _emit_claim(
        self,
        plan: _ClaimPlan,
        claim_id: str,
        version: int,
        claim_time: int,
        scenario: str | None,
        *,
        copy_of: Record | None = None,
        charge_factor: float = 1.0,
    ) -> Record:
        claim = self._build_claim(plan, claim_id, version, scenario)
        rules = self._planted(claim, plan, scenario)
        if copy_of is not None:
            claim["lines"] = [{**line, "modifiers": list(line["modifiers"])} for line in copy_of["lines"]]
            rules |= {"duplicate-line"}
        if charge_factor != 1.0:
            for line in claim["lines"]:
                line["charge_amount"] = f"{float(line['charge_amount']) * charge_factor:.2f}"
        self.claim_units[claim_id] = sum(line["units"] for line in claim["lines"] if line["hcpcs_code"] == "J7507")
        if rules:
            self.planted[(claim_id, version)] = rules
        self._emit("claim", plan.date_of_service, claim_time, claim)
        return claim

    def _maybe_resubmit(self, plan: _ClaimPlan, claim_id: str, claim_time: int, scenario: str | None) -> None:
        """A resubmission (claim_version 2): a correction for some fixable problems, else a charge fix."""
        rng = self.rng
        later = claim_time + rng.randint(1, 4) * 1440 + rng.randint(-120, 120)
        problem = SCENARIOS.get(scenario or "")
        if problem is not None and problem.fixable and rng.random() < 0.3:
            self._emit_claim(plan, claim_id, 2, later, None)
        elif (problem is None and rng.random() < 0.015) or (
            problem is not None and problem.lab_group and rng.random() < 0.1
        ):
            self._emit_claim(plan, claim_id, 2, later, scenario, charge_factor=1.04)

"""The facts rules compare, computed once per claim and once per line.

Definitions follow the "Terms used" section of rules.md; each property's docstring says which.

The filters that run for every line are loops, not comprehensions: in Python 3.11 a comprehension is
a function object and a call of its own, which over a patient's few labs or prescriptions costs more
than the filtering (the lab windows alone were 5% of an evaluation's instructions, by valgrind).
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache, lru_cache

from worker.engine.context import PatientContext
from worker.engine.records import LabFacts, PriorLine, RxFacts

__all__ = ["ClaimFacts", "LineFacts", "PriorLine", "effective_date", "is_tacrolimus_ir_oral"]
from worker.engine.events import Claim, ClaimLine
from worker.engine.exact import EXACT, dec, finite, positive_whole, sum_units, whole_units
from worker.engine.reference import ReferenceData, normalize_drug, normalize_ndc
from worker.engine.rules.packs import PackSettings, normalize_diagnosis
from worker.engine.rules.registry import EVIDENCE_LIST_CAP

TACROLIMUS = "tacrolimus"
_ACTIVE_STATUSES = frozenset(("ACTIVE", "COMPLETED"))  # as RxFacts.active_on


class ClaimFacts:
    """Facts shared by every J7507 line of one claim.

    Every rule runs on every J7507 line, so every fact is needed on every claim: they are computed
    once, up front, into slots (a lazy attribute per fact cost more in descriptor calls than most
    of the facts themselves)."""

    __slots__ = (
        "_lines_by_ndc_dos",
        "_prior_lines_by_ndc_dos",
        "_prior_units",
        "_units_through_line",
        "claim",
        "context",
        "diagnosis_codes",
        "discharge_date",
        "filed_on",
        "j7507_lines",
        "labs_by_group",
        "organ",
        "prescriptions",
        "prior_lines",
        "reference",
        "settings",
        "transplant_date",
    )

    def __init__(self, claim: Claim, context: PatientContext, settings: PackSettings, reference: ReferenceData) -> None:
        self.claim = claim
        self.context = context
        self.settings = settings
        self.reference = reference
        self.j7507_lines: tuple[ClaimLine, ...] = claim.j7507_lines
        self.prescriptions: list[RxFacts] = context.prescriptions
        # Counted labs per LOINC rule group (tacrolimus_level, creatinine, egfr, hepatic), oldest first.
        self.labs_by_group: dict[str, list[LabFacts]] = context.counted_labs_by_group(reference.group_of_loinc)
        # J7507 lines of the highest version of each other claim; this claim's own versions never count.
        self.prior_lines: list[PriorLine] = context.prior_lines(claim.claim_id)
        # The UTC calendar date of the claim's `event_time` (when it was filed); None when unknown.
        self.filed_on: date | None = _utc_date(claim.event_time) if claim.event_time is not None else None
        self.diagnosis_codes: tuple[str, ...] = _diagnosis_codes(claim.diagnosis_codes)
        transplant = claim.transplant
        self.organ: str | None = transplant.organ if transplant else None
        self.transplant_date: date | None = transplant.transplant_date if transplant else None
        self.discharge_date: date | None = transplant.discharge_date if transplant else None
        self._lines_by_ndc_dos: dict[tuple[str, date], list[int]] | None = None
        self._prior_lines_by_ndc_dos: dict[tuple[str | None, date], list[PriorLine]] | None = None
        self._prior_units: Decimal | None = None
        self._units_through_line: dict[int, Decimal] | None = None

    @property
    def counted_labs(self) -> list[LabFacts]:
        return self.context.counted_labs()

    # Indexes by (NDC, date of service) and unit totals, built on first use and once per claim, so a
    # rule comparing a line with the claim's other lines or the patient's history is linear, not
    # quadratic, in their number (only `duplicate-line` and `lifetime-cap-exceeded` read them).

    @property
    def lines_by_ndc_dos(self) -> dict[tuple[str, date], list[int]]:
        """Line numbers of this claim's J7507 lines with an NDC, per (NDC, date of service), ascending."""
        if self._lines_by_ndc_dos is None:
            index: dict[tuple[str, date], list[int]] = {}
            for line in self.j7507_lines:
                if line.ndc:
                    index.setdefault((normalize_ndc(line.ndc), line.date_of_service), []).append(line.line_number)
            for numbers in index.values():
                numbers.sort()
            self._lines_by_ndc_dos = index
        return self._lines_by_ndc_dos

    @property
    def prior_lines_by_ndc_dos(self) -> dict[tuple[str | None, date], list[PriorLine]]:
        """`prior_lines` per (NDC, date of service), in their order."""
        if self._prior_lines_by_ndc_dos is None:
            index: dict[tuple[str | None, date], list[PriorLine]] = {}
            for prior in self.prior_lines:
                index.setdefault((prior.ndc, prior.date_of_service), []).append(prior)
            self._prior_lines_by_ndc_dos = index
        return self._prior_lines_by_ndc_dos

    @property
    def prior_units(self) -> Decimal:
        """Units of all prior lines, exactly, plus the running total of prior claims the stream's
        context has moved past its horizon."""
        if self._prior_units is None:
            self._prior_units = EXACT.add(
                sum_units(prior.units for prior in self.prior_lines), self.context.expired.units
            )
        return self._prior_units

    @property
    def units_through_line(self) -> dict[int, Decimal]:
        """Per line number: units of this claim's J7507 lines up to and including it (one pass, exact)."""
        if self._units_through_line is None:
            totals: dict[int, Decimal] = {}
            running = Decimal(0)
            for line in sorted(self.j7507_lines, key=lambda line: line.line_number):
                running = EXACT.add(running, sum_units((line.units,)))
                totals[line.line_number] = running
            self._units_through_line = totals
        return self._units_through_line


class LineFacts:
    """Facts about one J7507 line, on its date of service (computed up front, as `ClaimFacts`)."""

    __slots__ = (
        "_windows",
        "active_prescriptions",
        "claim",
        "claim_facts",
        "days_supply",
        "dos",
        "expected_units",
        "line",
        "matched_prescription",
        "modifiers",
        "named_prescription",
        "ndc",
        "ndc_strength",
        "product",
        "quantity_bounds",
        "reference",
        "settings",
        "units",
        "units_whole",
        "window_start",
    )

    def __init__(self, claim_facts: ClaimFacts, line: ClaimLine) -> None:
        self.claim_facts = claim_facts
        self.claim = claim_facts.claim
        settings = self.settings = claim_facts.settings
        reference = self.reference = claim_facts.reference
        self.line = line
        dos = self.dos = line.date_of_service

        # --- the product billed ---
        # The line's NDC, dashes removed; None when absent or blank.
        # (Each field of the line is read once: a pydantic model's attributes are slower than slots.)
        written_ndc = line.ndc
        ndc = self.ndc = normalize_ndc(written_ndc) if written_ndc and written_ndc.strip() else None
        # The crosswalk row of the line's NDC (already normalized: `reference.product` would again).
        product = self.product = reference.crosswalk.get(ndc) if ndc else None
        self.ndc_strength: float | None = product.strength_mg if product else None
        self.modifiers: tuple[str, ...] = _modifiers(line.modifiers)

        # --- prescriptions ---
        # RxFacts.active_on, inlined: it runs for every prescription of every line.
        active: list[RxFacts] = []
        self.active_prescriptions = active
        for held in claim_facts.prescriptions:
            if (
                held.status in _ACTIVE_STATUSES
                and held.start_date <= dos
                and (held.end_date is None or held.end_date >= dos)
            ):
                active.append(held)
        # The prescription the line names, whatever its status (None when unknown or not named).
        prescription_id = line.prescription_id
        self.named_prescription: RxFacts | None = (
            claim_facts.context.prescription(prescription_id) if prescription_id else None
        )
        rx = self.matched_prescription = self.named_prescription if prescription_id else self._unnamed_match()
        # The line's days supply, else the matched prescription's.
        days_supply = line.days_supply
        if days_supply is None and rx is not None:
            days_supply = rx.days_supply
        self.days_supply: int | None = days_supply
        # The line's units as the exact decimal written, counted as the whole number within 1e-6 of
        # it (rules.md); None when not finite (validated events never are). `units_whole`: those
        # units are a positive whole number (what `units-not-whole` asks).
        self.units: Decimal | None
        self.units_whole: bool
        self.units, self.units_whole = _billed_units(line.units)
        # Matched dose_mg × doses_per_day × days supply (1 unit = 1 mg), exact in decimal; None when
        # any is missing.
        # expected × (1 − quantity_tolerance) and expected × (1 + quantity_tolerance), exact in decimal
        # (1.2 mg × 3 × 50 days ± 10% is exactly 162 and 198); None without expected.
        self.expected_units: Decimal | None = None
        self.quantity_bounds: tuple[Decimal, Decimal] | None = None
        if rx is not None and finite(rx.dose_mg) and rx.doses_per_day is not None and days_supply is not None:
            assert rx.dose_mg is not None  # finite() checked it
            self.expected_units, self.quantity_bounds = _expected_units(
                rx.dose_mg, rx.doses_per_day, days_supply, settings.quantity_tolerance
            )

        # --- labs ---
        self.window_start: date = _window_start(dos, settings.lab_lookback_days)
        self._windows: dict[str, list[LabFacts]] = {}

    def active_with_ingredient(self, *names: str) -> list[RxFacts]:
        active = self.active_prescriptions
        if not active:
            return []
        wanted = _ingredient_keys(names)
        found: list[RxFacts] = []
        for rx in active:
            if rx.ingredient_key in wanted:
                found.append(rx)
        return found

    def _unnamed_match(self) -> RxFacts | None:
        """rules.md "matched prescription": the named one (no fallback if unknown; `__init__` takes
        it), else the tacrolimus IMMEDIATE_RELEASE ORAL prescription active on DOS with the latest
        start_date (of equal start dates, the one recorded last)."""
        candidates = [rx for rx in self.active_prescriptions if is_tacrolimus_ir_oral(rx)]
        if len(candidates) < 2:
            return candidates[0] if candidates else None
        # max() keeps the first of equal keys; reversing makes the last-recorded win ties.
        return max(reversed(candidates), key=lambda rx: rx.start_date)

    # --- labs -----------------------------------------------------------------------------------

    def labs_in_window(self, group: str) -> list[LabFacts]:
        """Counted labs of a LOINC group with effective date in [DOS − lookback, DOS], oldest first.

        Several rules ask for the same group: each window is filtered once per line."""
        labs = self._windows.get(group)
        if labs is None:
            # A loop, not a comprehension: a group holds a few labs, and a comprehension is a
            # function object and a call of its own in Python 3.11.
            start, end = self.window_start, self.dos
            labs = self._windows[group] = []
            for lab in self.claim_facts.labs_by_group.get(group, ()):
                if start <= lab.effective_date <= end:
                    labs.append(lab)
        return labs

    def labs_between(self, group: str, start: date, end: date) -> list[LabFacts]:
        return [lab for lab in self.claim_facts.labs_by_group.get(group, ()) if start <= lab.effective_date <= end]

    # --- history --------------------------------------------------------------------------------

    @property
    def earlier_lines_of_claim(self) -> list[ClaimLine]:
        """Only `duplicate-line` asks, and only for lines with an NDC."""
        lines = self.claim_facts.j7507_lines
        if len(lines) == 1:  # the usual claim: this line alone
            return []
        number = self.line.line_number
        return [line for line in lines if line.line_number < number]

    def earlier_same_ndc_dos(self) -> tuple[list[int], int]:
        """The first ten line numbers of this claim's earlier J7507 lines with this line's NDC and
        date of service, and how many there are (from the claim's index: no scan of the lines)."""
        if self.ndc is None or len(self.claim_facts.j7507_lines) == 1:  # the usual claim: no other line
            return [], 0
        numbers = self.claim_facts.lines_by_ndc_dos.get((self.ndc, self.dos), [])
        count = bisect_left(numbers, self.line.line_number)
        return numbers[: min(count, EVIDENCE_LIST_CAP)], count

    def prior_same_ndc_dos(self) -> list[PriorLine]:
        """Prior claims' lines with this line's NDC and date of service, in history order.

        A claim of one line asks once: a scan is cheaper than building the index, which keeps a
        claim of many lines linear in its lines and the history."""
        ndc = self.ndc
        if ndc is None:
            return []
        if len(self.claim_facts.j7507_lines) == 1:
            dos = self.dos
            found: list[PriorLine] = []
            for prior in self.claim_facts.prior_lines:
                if prior.date_of_service == dos and prior.ndc == ndc:
                    found.append(prior)
            return found
        return self.claim_facts.prior_lines_by_ndc_dos.get((self.ndc, self.dos), [])


def _utc_date(moment: datetime) -> date:
    try:
        return moment.astimezone(UTC).date()
    except OverflowError:  # 0001-01-01T00:00+14:00 has no UTC date: keep its local date
        return moment.date()


# Pure functions of values that recur on every claim (dates of service, modifier lists, a pack's
# tolerance): computed once each, in bounded caches since input can be anything.


@lru_cache(maxsize=4096)
def _window_start(dos: date, lookback_days: int) -> date:
    try:
        return dos - timedelta(days=lookback_days)
    except OverflowError:  # a DOS near year 1: the window starts at the beginning of time
        return date.min


@lru_cache(maxsize=4096)
def _diagnosis_codes(codes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(normalize_diagnosis(code) for code in codes)


@lru_cache(maxsize=1024)
def _modifiers(modifiers: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(modifier.strip().upper() for modifier in modifiers if modifier.strip())


# A line's units as counted and whether they are whole, per distinct billed value (a few hundred
# recur); zeros are not kept (see `dec`), and neither is anything not finite.
_BILLED: dict[float, tuple[Decimal | None, bool]] = {}
_BILLED_MAX = 16_384


def _billed_units(units: float) -> tuple[Decimal | None, bool]:
    cached = _BILLED.get(units)
    if cached is not None:
        return cached
    exact = whole_units(units)
    result = (exact, positive_whole(exact))
    if units and exact is not None:
        if len(_BILLED) >= _BILLED_MAX:
            _BILLED.clear()
        _BILLED[units] = result
    return result


@lru_cache(maxsize=64)
def _tolerance_factors(tolerance: float) -> tuple[Decimal, Decimal]:
    """1 − tolerance and 1 + tolerance, exact in decimal."""
    exact = dec(tolerance)
    return EXACT.subtract(1, exact), EXACT.add(1, exact)


# A patient's dose, frequency and supply recur on every fill: the product and its bounds are
# computed once per distinct combination. Cleared when full (bounded: input can be anything); zero
# doses are not kept, as `dec` keeps no zeros (0.0 and -0.0 are equal keys with different signs).
_EXPECTED: dict[tuple[float, int, int, float], tuple[Decimal, tuple[Decimal, Decimal]]] = {}
_EXPECTED_MAX = 16_384


def _expected_units(
    dose_mg: float, doses_per_day: int, days_supply: int, tolerance: float
) -> tuple[Decimal, tuple[Decimal, Decimal]]:
    """dose_mg × doses_per_day × days supply, exactly, and that times 1 ∓ the tolerance."""
    key = (dose_mg, doses_per_day, days_supply, tolerance)
    cached = _EXPECTED.get(key)
    if cached is not None:
        return cached
    expected = EXACT.multiply(EXACT.multiply(dec(dose_mg), doses_per_day), days_supply)
    low, high = _tolerance_factors(tolerance)
    result = (expected, (EXACT.multiply(expected, low), EXACT.multiply(expected, high)))
    if dose_mg and tolerance:
        if len(_EXPECTED) >= _EXPECTED_MAX:
            _EXPECTED.clear()
        _EXPECTED[key] = result
    return result


@cache
def _ingredient_keys(names: tuple[str, ...]) -> frozenset[str]:
    """The rules name drugs with constants: normalize each set of names once per process."""
    return frozenset(normalize_drug(name) for name in names)


def is_tacrolimus_ir_oral(rx: RxFacts) -> bool:
    return rx.ingredient_key == TACROLIMUS and rx.formulation == "IMMEDIATE_RELEASE" and rx.route == "ORAL"


def effective_date(lab: LabFacts) -> date:
    """The UTC calendar date of the lab's effective time (naive times are taken as UTC)."""
    return lab.effective_date

"""The facts rules compare, computed once per claim or per line and only when a rule asks.

Definitions follow the "Terms used" section of rules.md; each property's docstring says which.
"""

from __future__ import annotations

from datetime import UTC, date, timedelta
from decimal import Decimal
from functools import cache, lru_cache

from worker.context import LabFacts, PatientContext, PriorLine, RxFacts

__all__ = ["ClaimFacts", "LineFacts", "PriorLine", "effective_date", "is_tacrolimus_ir_oral"]
from worker.events import Claim, ClaimLine
from worker.exact import EXACT, dec, finite, whole_units
from worker.lazy import lazy
from worker.reference import NdcProduct, ReferenceData, normalize_drug, normalize_ndc
from worker.rules.packs import PackSettings, normalize_diagnosis

TACROLIMUS = "tacrolimus"


class ClaimFacts:
    """Facts shared by every J7507 line of one claim."""

    def __init__(self, claim: Claim, context: PatientContext, settings: PackSettings, reference: ReferenceData) -> None:
        self.claim = claim
        self.context = context
        self.settings = settings
        self.reference = reference

    @lazy
    def j7507_lines(self) -> tuple[ClaimLine, ...]:
        return self.claim.j7507_lines

    @lazy
    def prescriptions(self) -> list[RxFacts]:
        return self.context.prescriptions

    @lazy
    def counted_labs(self) -> list[LabFacts]:
        return self.context.counted_labs()

    @lazy
    def labs_by_group(self) -> dict[str, list[LabFacts]]:
        """Counted labs per LOINC rule group (tacrolimus_level, creatinine, egfr, hepatic), oldest first."""
        return self.context.counted_labs_by_group(self.reference.group_of_loinc)

    @lazy
    def prior_lines(self) -> list[PriorLine]:
        """J7507 lines of the highest version of each other claim; this claim's own versions never count."""
        return self.context.prior_lines(self.claim.claim_id)

    @lazy
    def filed_on(self) -> date | None:
        """The UTC calendar date of the claim's `event_time` (when it was filed); None when unknown."""
        moment = self.claim.event_time
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC).date()
        except OverflowError:  # 0001-01-01T00:00+14:00 has no UTC date: keep its local date
            return moment.date()

    @lazy
    def diagnosis_codes(self) -> tuple[str, ...]:
        return tuple(normalize_diagnosis(code) for code in self.claim.diagnosis_codes)

    @property
    def organ(self) -> str | None:
        return self.claim.transplant.organ if self.claim.transplant else None

    @property
    def transplant_date(self) -> date | None:
        return self.claim.transplant.transplant_date if self.claim.transplant else None

    @property
    def discharge_date(self) -> date | None:
        return self.claim.transplant.discharge_date if self.claim.transplant else None


class LineFacts:
    """Facts about one J7507 line, on its date of service."""

    def __init__(self, claim_facts: ClaimFacts, line: ClaimLine) -> None:
        self.claim_facts = claim_facts
        self.claim = claim_facts.claim
        self.settings = claim_facts.settings
        self.reference = claim_facts.reference
        self.line = line
        self.dos = line.date_of_service

    # --- the product billed ---------------------------------------------------------------------

    @lazy
    def ndc(self) -> str | None:
        """The line's NDC, dashes removed; None when absent or blank."""
        return normalize_ndc(self.line.ndc) if self.line.ndc and self.line.ndc.strip() else None

    @lazy
    def product(self) -> NdcProduct | None:
        """The crosswalk row of the line's NDC."""
        return self.reference.product(self.ndc)

    @property
    def ndc_strength(self) -> float | None:
        return self.product.strength_mg if self.product else None

    @lazy
    def modifiers(self) -> tuple[str, ...]:
        return _modifiers(self.line.modifiers)

    # --- prescriptions --------------------------------------------------------------------------

    @lazy
    def active_prescriptions(self) -> list[RxFacts]:
        return [rx for rx in self.claim_facts.prescriptions if rx.active_on(self.dos)]

    def active_with_ingredient(self, *names: str) -> list[RxFacts]:
        wanted = _ingredient_keys(names)
        return [rx for rx in self.active_prescriptions if rx.ingredient_key in wanted]

    @lazy
    def named_prescription(self) -> RxFacts | None:
        """The prescription the line names, whatever its status (None when unknown or not named)."""
        if not self.line.prescription_id:
            return None
        return self.claim_facts.context.prescription(self.line.prescription_id)

    @lazy
    def matched_prescription(self) -> RxFacts | None:
        """rules.md "matched prescription": the named one (no fallback if unknown), else the
        tacrolimus IMMEDIATE_RELEASE ORAL prescription active on DOS with the latest start_date
        (of equal start dates, the one recorded last)."""
        if self.line.prescription_id:
            return self.named_prescription
        candidates = [rx for rx in self.active_prescriptions if is_tacrolimus_ir_oral(rx)]
        if not candidates:
            return None
        # max() keeps the first of equal keys; reversing makes the last-recorded win ties.
        return max(reversed(candidates), key=lambda rx: rx.start_date)

    @lazy
    def days_supply(self) -> int | None:
        """The line's days supply, else the matched prescription's."""
        if self.line.days_supply is not None:
            return self.line.days_supply
        return self.matched_prescription.days_supply if self.matched_prescription else None

    @lazy
    def units(self) -> Decimal | None:
        """The line's units as the exact decimal written, counted as the whole number within 1e-6
        of it (rules.md); None when not finite (validated events never are)."""
        return whole_units(self.line.units)

    @lazy
    def expected_units(self) -> Decimal | None:
        """Matched dose_mg × doses_per_day × days supply (1 unit = 1 mg), exact in decimal; None
        when any is missing."""
        rx = self.matched_prescription
        if rx is None or not finite(rx.dose_mg) or rx.doses_per_day is None or self.days_supply is None:
            return None
        assert rx.dose_mg is not None  # finite() checked it
        return EXACT.multiply(EXACT.multiply(dec(rx.dose_mg), rx.doses_per_day), self.days_supply)

    @lazy
    def quantity_bounds(self) -> tuple[Decimal, Decimal] | None:
        """expected × (1 − quantity_tolerance) and expected × (1 + quantity_tolerance), exact in
        decimal (1.2 mg × 3 × 50 days ± 10% is exactly 162 and 198); None without expected."""
        expected = self.expected_units
        if expected is None:
            return None
        low, high = _tolerance_factors(self.settings.quantity_tolerance)
        return EXACT.multiply(expected, low), EXACT.multiply(expected, high)

    # --- labs -----------------------------------------------------------------------------------

    @lazy
    def window_start(self) -> date:
        return _window_start(self.dos, self.settings.lab_lookback_days)

    def labs_in_window(self, group: str) -> list[LabFacts]:
        """Counted labs of a LOINC group with effective date in [DOS − lookback, DOS], oldest first.

        Several rules ask for the same group: each window is filtered once per line."""
        windows = self._windows
        labs = windows.get(group)
        if labs is None:
            labs = windows[group] = self.labs_between(group, self.window_start, self.dos)
        return labs

    @lazy
    def _windows(self) -> dict[str, list[LabFacts]]:
        return {}

    def labs_between(self, group: str, start: date, end: date) -> list[LabFacts]:
        return [lab for lab in self.claim_facts.labs_by_group.get(group, ()) if start <= lab.effective_date <= end]

    # --- history --------------------------------------------------------------------------------

    @lazy
    def earlier_lines_of_claim(self) -> list[ClaimLine]:
        return [line for line in self.claim_facts.j7507_lines if line.line_number < self.line.line_number]


# Pure functions of values that recur on every claim (dates of service, modifier lists, a pack's
# tolerance): computed once each, in bounded caches since input can be anything.


@lru_cache(maxsize=4096)
def _window_start(dos: date, lookback_days: int) -> date:
    try:
        return dos - timedelta(days=lookback_days)
    except OverflowError:  # a DOS near year 1: the window starts at the beginning of time
        return date.min


@lru_cache(maxsize=1024)
def _modifiers(modifiers: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(modifier.strip().upper() for modifier in modifiers if modifier.strip())


@lru_cache(maxsize=64)
def _tolerance_factors(tolerance: float) -> tuple[Decimal, Decimal]:
    """1 − tolerance and 1 + tolerance, exact in decimal."""
    exact = dec(tolerance)
    return EXACT.subtract(1, exact), EXACT.add(1, exact)


@cache
def _ingredient_keys(names: tuple[str, ...]) -> frozenset[str]:
    """The rules name drugs with constants: normalize each set of names once per process."""
    return frozenset(normalize_drug(name) for name in names)


def is_tacrolimus_ir_oral(rx: RxFacts) -> bool:
    return rx.ingredient_key == TACROLIMUS and rx.formulation == "IMMEDIATE_RELEASE" and rx.route == "ORAL"


def effective_date(lab: LabFacts) -> date:
    """The UTC calendar date of the lab's effective time (naive times are taken as UTC)."""
    return lab.effective_date

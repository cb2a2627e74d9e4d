"""The facts rules compare, computed once per claim or per line and only when a rule asks.

Definitions follow the "Terms used" section of rules.md; each property's docstring says which.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import UTC, date, timedelta
from decimal import Decimal

from worker.engine.context import PatientContext
from worker.engine.records import LabFacts, PriorLine, RxFacts

__all__ = ["ClaimFacts", "LineFacts", "PriorLine", "effective_date", "is_tacrolimus_ir_oral"]
from worker.engine.events import Claim, ClaimLine
from worker.engine.exact import EXACT, dec, finite, sum_units, whole_units
from worker.engine.lazy import lazy
from worker.engine.reference import NdcProduct, ReferenceData, normalize_drug, normalize_ndc
from worker.engine.rules.packs import PackSettings, normalize_diagnosis
from worker.engine.rules.registry import EVIDENCE_LIST_CAP

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

    # Indexes by (NDC, date of service), built once per claim, so that a rule comparing a line with
    # the claim's other lines or the patient's history is linear, not quadratic, in their number.

    @lazy
    def lines_by_ndc_dos(self) -> dict[tuple[str, date], list[int]]:
        """Line numbers of this claim's J7507 lines with an NDC, per (NDC, date of service), ascending."""
        index: dict[tuple[str, date], list[int]] = {}
        for line in self.j7507_lines:
            if line.ndc:
                index.setdefault((normalize_ndc(line.ndc), line.date_of_service), []).append(line.line_number)
        for numbers in index.values():
            numbers.sort()
        return index

    @lazy
    def prior_lines_by_ndc_dos(self) -> dict[tuple[str | None, date], list[PriorLine]]:
        """`prior_lines` per (NDC, date of service), in their order."""
        index: dict[tuple[str | None, date], list[PriorLine]] = {}
        for prior in self.prior_lines:
            index.setdefault((prior.ndc, prior.line.date_of_service), []).append(prior)
        return index

    @lazy
    def prior_units(self) -> Decimal:
        """Units of all prior lines, exactly (summed once per claim), plus the running total of prior
        claims the stream's context has moved past its horizon."""
        return EXACT.add(sum_units(prior.line.units for prior in self.prior_lines), self.context.expired.units)

    @lazy
    def units_through_line(self) -> dict[int, Decimal]:
        """Per line number: units of this claim's J7507 lines up to and including it (one pass, exact)."""
        totals: dict[int, Decimal] = {}
        running = Decimal(0)
        for line in sorted(self.j7507_lines, key=lambda line: line.line_number):
            running = EXACT.add(running, sum_units((line.units,)))
            totals[line.line_number] = running
        return totals

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
        return tuple(modifier.strip().upper() for modifier in self.line.modifiers if modifier.strip())

    # --- prescriptions --------------------------------------------------------------------------

    @lazy
    def active_prescriptions(self) -> list[RxFacts]:
        return [rx for rx in self.claim_facts.prescriptions if rx.active_on(self.dos)]

    def active_with_ingredient(self, *names: str) -> list[RxFacts]:
        wanted = {normalize_drug(name) for name in names}
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
        tolerance = dec(self.settings.quantity_tolerance)
        return (
            EXACT.multiply(expected, EXACT.subtract(1, tolerance)),
            EXACT.multiply(expected, EXACT.add(1, tolerance)),
        )

    # --- labs -----------------------------------------------------------------------------------

    @lazy
    def window_start(self) -> date:
        try:
            return self.dos - timedelta(days=self.settings.lab_lookback_days)
        except OverflowError:  # a DOS near year 1: the window starts at the beginning of time
            return date.min

    def labs_in_window(self, group: str) -> list[LabFacts]:
        """Counted labs of a LOINC group with effective date in [DOS − lookback, DOS], oldest first."""
        return self.labs_between(group, self.window_start, self.dos)

    def labs_between(self, group: str, start: date, end: date) -> list[LabFacts]:
        return [lab for lab in self.claim_facts.labs_by_group.get(group, ()) if start <= lab.effective_date <= end]

    # --- history --------------------------------------------------------------------------------

    @lazy
    def earlier_lines_of_claim(self) -> list[ClaimLine]:
        return [line for line in self.claim_facts.j7507_lines if line.line_number < self.line.line_number]

    def earlier_same_ndc_dos(self) -> tuple[list[int], int]:
        """The first ten line numbers of this claim's earlier J7507 lines with this line's NDC and
        date of service, and how many there are (from the claim's index: no scan of the lines)."""
        if self.ndc is None:
            return [], 0
        numbers = self.claim_facts.lines_by_ndc_dos.get((self.ndc, self.dos), [])
        count = bisect_left(numbers, self.line.line_number)
        return numbers[: min(count, EVIDENCE_LIST_CAP)], count

    def prior_same_ndc_dos(self) -> list[PriorLine]:
        """Prior claims' lines with this line's NDC and date of service (from the history index)."""
        if self.ndc is None:
            return []
        return self.claim_facts.prior_lines_by_ndc_dos.get((self.ndc, self.dos), [])


def is_tacrolimus_ir_oral(rx: RxFacts) -> bool:
    return rx.ingredient_key == TACROLIMUS and rx.formulation == "IMMEDIATE_RELEASE" and rx.route == "ORAL"


def effective_date(lab: LabFacts) -> date:
    """The UTC calendar date of the lab's effective time (naive times are taken as UTC)."""
    return lab.effective_date

"""Laboratory context: is the drug being monitored as the label requires?"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import lru_cache

from worker.engine.exact import EXACT, dec, text
from worker.engine.rules.facts import LineFacts, effective_date
from worker.engine.rules.registry import Hit, rule

EARLY_PERIOD = timedelta(days=90)


def _window(facts: LineFacts) -> dict[str, object]:
    return {
        "window_start": facts.window_start,
        "window_end": facts.dos,
        "lab_lookback_days": facts.settings.lab_lookback_days,
    }


@rule("trough-missing", family="labs", outcomes=("HOLD",), settings=("lab_lookback_days",), policy_ref="label")
def trough_missing(facts: LineFacts) -> Hit | None:
    """No counted tacrolimus level (LOINC 11253-2, 77348-1) in the lab window."""
    if facts.labs_in_window("tacrolimus_level"):
        return None
    return Hit(
        message=f"No tacrolimus level in the {facts.settings.lab_lookback_days} days up to {facts.dos}.",
        evidence=_window(facts),
        fix="Obtain the latest whole-blood tacrolimus trough from the transplant center.",
    )


@rule(
    "trough-out-of-range",
    family="labs",
    outcomes=("HOLD",),
    settings=("trough_targets", "lab_lookback_days"),
    policy_ref="label",
)
def trough_out_of_range(facts: LineFacts) -> Hit | None:
    """The newest counted tacrolimus level in the window is outside `trough_targets` for the organ.

    Targets are inclusive and compare exactly: no arithmetic is involved, and two doubles order
    exactly as the decimals they were written as (a level of 20 against 4–20 is in range). "Early"
    means the lab's effective date is less than 90 days after the transplant date; with no
    transplant date it is "later". Organs without their own target, and claims without a
    transplant record, use the DEFAULT range.
    """
    levels = facts.labs_in_window("tacrolimus_level")
    if not levels:
        return None
    newest = levels[-1]
    assert newest.value is not None  # counted labs have a value
    transplant_date = facts.claim_facts.transplant_date
    lab_date = effective_date(newest)
    early = transplant_date is not None and (lab_date - transplant_date) < EARLY_PERIOD
    organ = facts.claim_facts.organ
    low, high = facts.settings.trough_range(organ, early)
    if low <= newest.value <= high:
        return None
    return Hit(
        message=(
            f"The newest tacrolimus level, {text(newest.value)} ng/mL on {lab_date}, is "
            f"{'below' if newest.value < low else 'above'} the {text(low)}–{text(high)} ng/mL target "
            f"({'early' if early else 'later'} period, {(organ or 'unknown organ').lower()})."
        ),
        evidence={
            "observation_id": newest.observation_id,
            "value": newest.value,
            "effective_date": lab_date,
            "target_low": low,
            "target_high": high,
            "period": "early" if early else "later",
            "organ": organ,
        },
        fix="Have the transplant team review the level and confirm the dose before dispensing.",
    )


@rule("renal-function-missing", family="labs", outcomes=("HOLD",), settings=("lab_lookback_days",), policy_ref="label")
def renal_function_missing(facts: LineFacts) -> Hit | None:
    """No counted creatinine (2160-0) or eGFR (98979-8, 62238-1, 33914-3) in the lab window."""
    if facts.labs_in_window("creatinine") or facts.labs_in_window("egfr"):
        return None
    return Hit(
        message=f"No creatinine or eGFR in the {facts.settings.lab_lookback_days} days up to {facts.dos}.",
        evidence=_window(facts),
        fix="Obtain a recent creatinine or eGFR result (tacrolimus is nephrotoxic).",
    )


EGFR_FLOOR = 30.0
CREATININE_RISE = Decimal("1.5")


@lru_cache(maxsize=4096)  # a patient's values recur claim after claim; a bool, so zeros' signs do not matter
def _rises(newest: float, lowest: float) -> bool:
    """newest ≥ 1.5 × lowest, on the decimals as written."""
    return dec(newest) >= EXACT.multiply(CREATININE_RISE, dec(lowest))


@rule(
    "renal-function-declining", family="labs", outcomes=("HOLD",), settings=("lab_lookback_days",), policy_ref="label"
)
def renal_function_declining(facts: LineFacts) -> Hit | None:
    """Newest eGFR in the window < 30, or newest creatinine ≥ 1.5 × the lowest creatinine in the window.

    Both use counted labs in the window, compared exactly as written: the eGFR against 30 needs no
    arithmetic, and 1.5 × the lowest creatinine is computed in decimal from the values as written,
    so 0.8 → 1.2 (exactly 1.5×) fires and 1.19 does not. A creatinine of 0 (bad data) makes any
    later value "≥ 1.5 × the lowest" and holds the claim for a person to check. Evidence carries
    every comparison that fired, as written.
    """
    egfr = facts.labs_in_window("egfr")
    egfr_low = bool(egfr) and egfr[-1].value is not None and egfr[-1].value < EGFR_FLOOR
    creatinine = facts.labs_in_window("creatinine")
    rising = False
    if creatinine:
        newest = creatinine[-1].value
        # The lowest value: comparing doubles picks the same lab as comparing their decimals; only the
        # product needs decimals. A loop: a comprehension is a function call of its own in 3.11.
        lowest: float | None = None  # as min() over the values, in order
        for lab in creatinine:
            value = lab.value
            if value is not None and (lowest is None or value < lowest):
                lowest = value
        rising = newest is not None and lowest is not None and _rises(newest, lowest)
    if not egfr_low and not rising:
        return None
    evidence: dict[str, object] = {}
    reasons = []
    if egfr_low:
        evidence |= {"egfr": egfr[-1].value, "egfr_date": effective_date(egfr[-1]), "egfr_floor": EGFR_FLOOR}
        reasons.append(f"eGFR {text(egfr[-1].value)} is below {text(EGFR_FLOOR)}")  # type: ignore[arg-type]
    if rising:
        assert newest is not None and lowest is not None
        evidence |= {"creatinine": newest, "lowest_creatinine": lowest}
        reasons.append(
            f"creatinine {text(newest)} is at least {text(CREATININE_RISE)}× the lowest in the window ({text(lowest)})"
        )
    return Hit(
        message="Renal function is declining: " + "; ".join(reasons) + ".",
        evidence=evidence,
        fix="Have the transplant team review renal function and the tacrolimus dose before dispensing.",
    )


@rule(
    "hepatic-function-missing", family="labs", outcomes=("HOLD",), settings=("lab_lookback_days",), policy_ref="label"
)
def hepatic_function_missing(facts: LineFacts) -> Hit | None:
    """Organ LIVER and no counted ALT (1742-6), AST (1920-8) or total bilirubin (1975-2) in the window."""
    if facts.claim_facts.organ != "LIVER" or facts.labs_in_window("hepatic"):
        return None
    return Hit(
        message=(
            f"Liver recipient with no ALT, AST or bilirubin in the {facts.settings.lab_lookback_days} days "
            f"up to {facts.dos}."
        ),
        evidence={**_window(facts), "organ": "LIVER"},
        fix="Obtain recent liver function tests from the transplant center.",
    )

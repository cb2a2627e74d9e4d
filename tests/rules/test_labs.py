"""Laboratory context (rules.md): counted labs, the lab window, trough targets, renal and hepatic tests.

DOS is 2025-12-01 and lab_lookback_days 90, so the window is [2025-09-02, 2025-12-01] by the UTC
calendar date of effective_time.
"""

from __future__ import annotations

from typing import Any

from .conftest import (
    ALT,
    AST,
    BILIRUBIN,
    CREATININE,
    DOS,
    EGFR,
    EGFR_2009,
    EGFR_MDRD,
    TACROLIMUS_LEVEL,
    TACROLIMUS_TROUGH,
    fires,
    lab,
    quiet,
)

RENAL = [lab("OBS-CREA-1", CREATININE, 1.1, "2025-11-20"), lab("OBS-EGFR-1", EGFR, 62, "2025-11-20")]


def _levels(*levels: dict[str, Any]) -> dict[str, Any]:
    """Replace the labs: these tacrolimus levels plus the baseline's renal labs."""
    return {"labs": [*levels, *RENAL]}


def _level(value: float | None, day: str, observation_id: str = "OBS-TAC-9", **fields: Any) -> dict[str, Any]:
    return lab(observation_id, fields.pop("loinc_code", TACROLIMUS_LEVEL), value, day, **fields)


TROUGH_MISSING = [
    quiet("level on 2025-11-20", {}),
    fires(
        "no tacrolimus level at all",
        _levels(),
        "HOLD",
        window_start="2025-09-02",
        window_end=DOS,
        lab_lookback_days="90",
    ),
    quiet("level on the first day of the window (DOS − 90)", _levels(_level(8, "2025-09-02"))),
    fires("level the day before the window (DOS − 91)", _levels(_level(8, "2025-09-01")), "HOLD"),
    quiet("level on the DOS", _levels(_level(8, DOS))),
    fires("level after the DOS", _levels(_level(8, "2025-12-02")), "HOLD"),
    quiet(
        "effective date is the UTC date: 2025-09-01T23:30-05:00 is 2025-09-02 UTC",
        _levels(_level(8, "2025-09-01", time="23:30:00-05:00")),
    ),
    fires(
        "effective date is the UTC date: 2025-12-01T20:00-05:00 is 2025-12-02 UTC",
        _levels(_level(8, DOS, time="20:00:00-05:00")),
        "HOLD",
    ),
    quiet("the trough LOINC 77348-1 counts", _levels(_level(8, "2025-11-20", loinc_code=TACROLIMUS_TROUGH))),
    fires(
        "another tacrolimus LOINC (74097-7) is not a level here",
        _levels(_level(8, "2025-11-20", loinc_code="74097-7")),
        "HOLD",
    ),
    quiet("CORRECTED counts", _levels(_level(8, "2025-11-20", status="CORRECTED"))),
    quiet("AMENDED counts", _levels(_level(8, "2025-11-20", status="AMENDED"))),
    fires("PRELIMINARY never counts", _levels(_level(8, "2025-11-20", status="PRELIMINARY")), "HOLD"),
    fires("CANCELLED never counts", _levels(_level(8, "2025-11-20", status="CANCELLED")), "HOLD"),
    fires("ENTERED_IN_ERROR never counts", _levels(_level(8, "2025-11-20", status="ENTERED_IN_ERROR")), "HOLD"),
    fires("FINAL with value null never counts", _levels(_level(None, "2025-11-20")), "HOLD"),
    fires(
        "a later CANCELLED event replaces the FINAL one",
        _levels(_level(8, "2025-11-20"), _level(8, "2025-11-20", status="CANCELLED")),
        "HOLD",
    ),
    quiet(
        "a CANCELLED event with an earlier event_time does not replace the FINAL one",
        _levels(
            _level(8, "2025-11-20", event_time="2025-11-21T10:00:00Z"),
            _level(8, "2025-11-20", status="CANCELLED", event_time="2025-11-21T09:00:00Z"),
        ),
    ),
    fires(
        "equal event_time: the later in the list wins",
        _levels(
            _level(8, "2025-11-20", event_time="2025-11-21T10:00:00Z"),
            _level(8, "2025-11-20", status="CANCELLED", event_time="2025-11-21T10:00:00Z"),
        ),
        "HOLD",
    ),
    quiet(
        "a later FINAL event replaces a PRELIMINARY one",
        _levels(_level(8, "2025-11-20", status="PRELIMINARY"), _level(8, "2025-11-20")),
    ),
]


def _transplant(transplant_date: str | None, organ: str | None = None) -> dict[str, Any]:
    changes: dict[str, Any] = {"transplant.transplant_date": transplant_date, "transplant.discharge_date": None}
    if organ is not None:
        changes["transplant.organ"] = organ
    return changes


TROUGH_OUT_OF_RANGE = [
    # Kidney, later (baseline transplant 2024-06-15): 4–15.
    quiet("kidney later 8.2", {}),
    quiet("kidney later 15 (inclusive)", _levels(_level(15, "2025-11-20"))),
    fires(
        "kidney later 15.1",
        _levels(_level(15.1, "2025-11-20")),
        "HOLD",
        value="15.1",
        target_low="4",
        target_high="15",
        period="later",
    ),
    quiet("kidney later 4 (inclusive)", _levels(_level(4, "2025-11-20"))),
    fires("kidney later 3.9", _levels(_level(3.9, "2025-11-20")), "HOLD", target_low="4"),
    # Kidney early: transplant 2025-09-01; early = lab date < 2025-11-30.
    quiet("kidney early (day 89) 18: 4–20", {**_transplant("2025-09-01"), **_levels(_level(18, "2025-11-29"))}),
    fires(
        "kidney day 90 is later: 18 is above 15",
        {**_transplant("2025-09-01"), **_levels(_level(18, "2025-11-30"))},
        "HOLD",
        period="later",
        target_high="15",
    ),
    quiet("kidney early 20 (inclusive)", {**_transplant("2025-09-01"), **_levels(_level(20, "2025-11-29"))}),
    fires(
        "kidney early 20.5",
        {**_transplant("2025-09-01"), **_levels(_level(20.5, "2025-11-29"))},
        "HOLD",
        period="early",
        target_high="20",
    ),
    fires(
        "unknown transplant date is not early: kidney 18",
        {**_transplant(None), **_levels(_level(18, "2025-11-29"))},
        "HOLD",
    ),
    # Liver 5–20, early and later.
    quiet("liver 20", _levels(_level(20, "2025-11-20")), organ="LIVER"),
    fires("liver 20.5", _levels(_level(20.5, "2025-11-20")), "HOLD", organ="LIVER"),
    fires("liver 4.9", _levels(_level(4.9, "2025-11-20")), "HOLD", organ="LIVER"),
    fires(
        "liver early 4.9", {**_transplant("2025-09-01"), **_levels(_level(4.9, "2025-11-20"))}, "HOLD", organ="LIVER"
    ),
    # Heart early 10–20, later 5–15.
    fires(
        "heart early 9",
        {**_transplant("2025-10-01", "HEART"), **_levels(_level(9, "2025-11-20"))},
        "HOLD",
        target_low="10",
    ),
    quiet("heart early 19", {**_transplant("2025-10-01", "HEART"), **_levels(_level(19, "2025-11-20"))}),
    quiet("heart later 5", {**_transplant(None, "HEART"), **_levels(_level(5, "2025-11-20"))}),
    fires("heart later 16", {**_transplant("2024-01-10", "HEART"), **_levels(_level(16, "2025-11-20"))}, "HOLD"),
    # Lung and heart-lung early 10–15, later 8–12.
    quiet("lung later 12", {**_transplant("2024-01-10", "LUNG"), **_levels(_level(12, "2025-11-20"))}),
    fires(
        "lung later 12.5",
        {**_transplant("2024-01-10", "LUNG"), **_levels(_level(12.5, "2025-11-20"))},
        "HOLD",
        target_high="12",
    ),
    fires(
        "lung later 7.9",
        {**_transplant("2024-01-10", "LUNG"), **_levels(_level(7.9, "2025-11-20"))},
        "HOLD",
        target_low="8",
    ),
    fires(
        "lung early 16",
        {**_transplant("2025-10-01", "LUNG"), **_levels(_level(16, "2025-11-20"))},
        "HOLD",
        target_high="15",
    ),
    fires(
        "heart-lung later 12.5",
        {**_transplant("2024-01-10", "HEART_LUNG"), **_levels(_level(12.5, "2025-11-20"))},
        "HOLD",
    ),
    quiet("heart-lung early 14", {**_transplant("2025-10-01", "HEART_LUNG"), **_levels(_level(14, "2025-11-20"))}),
    # Every other organ 5–20.
    quiet("pancreas 20", {**_transplant("2024-01-10", "PANCREAS"), **_levels(_level(20, "2025-11-20"))}),
    fires("pancreas 4.5", {**_transplant("2024-01-10", "PANCREAS"), **_levels(_level(4.5, "2025-11-20"))}, "HOLD"),
    fires("no transplant record: 4.5 is below 5", {"transplant": None, **_levels(_level(4.5, "2025-11-20"))}, "HOLD"),
    # The newest counted level in the window is the one compared.
    quiet(
        "older 25, newer 8.2",
        _levels(_level(25, "2025-11-10", "OBS-A"), _level(8.2, "2025-11-20", "OBS-B")),
    ),
    fires(
        "older 8.2, newer 25 (listed first)",
        _levels(_level(25, "2025-11-25", "OBS-A"), _level(8.2, "2025-11-20", "OBS-B")),
        "HOLD",
        value="25",
        observation_id="OBS-A",
    ),
    quiet(
        "same effective time: the later in the input is newer (8.2)",
        _levels(_level(25, "2025-11-20", "OBS-A"), _level(8.2, "2025-11-20", "OBS-B")),
    ),
    fires(
        "same effective time: the later in the input is newer (25)",
        _levels(_level(8.2, "2025-11-20", "OBS-A"), _level(25, "2025-11-20", "OBS-B")),
        "HOLD",
        observation_id="OBS-B",
    ),
    quiet(
        "a CORRECTED event replaces the FINAL one (25 → 8.2)",
        _levels(_level(25, "2025-11-20"), _level(8.2, "2025-11-20", status="CORRECTED")),
    ),
    fires(
        "a CORRECTED event replaces the FINAL one (8.2 → 25)",
        _levels(_level(8.2, "2025-11-20"), _level(25, "2025-11-20", status="CORRECTED")),
        "HOLD",
        value="25",
    ),
    quiet(
        "a newer PRELIMINARY level does not count",
        _levels(_level(8.2, "2025-11-20", "OBS-A"), _level(25, "2025-11-28", "OBS-B", status="PRELIMINARY")),
    ),
    quiet(
        "a newer level after the DOS is outside the window",
        _levels(_level(8.2, "2025-11-20", "OBS-A"), _level(25, "2025-12-03", "OBS-B")),
    ),
    quiet("no level in the window (trough-missing's case)", _levels(_level(25, "2025-08-01"))),
]


LEVEL = lab("OBS-TAC-1", TACROLIMUS_LEVEL, 8.2, "2025-11-20")


def _renal(*labs: dict[str, Any]) -> dict[str, Any]:
    """Replace the labs: the baseline's tacrolimus level plus these."""
    return {"labs": [LEVEL, *labs]}


RENAL_MISSING = [
    quiet("creatinine and eGFR", {}),
    quiet("creatinine only", _renal(lab("C", CREATININE, 1.1, "2025-11-20"))),
    quiet("eGFR 98979-8 only", _renal(lab("E", EGFR, 62, "2025-11-20"))),
    quiet("eGFR 62238-1 only", _renal(lab("E", EGFR_2009, 62, "2025-11-20"))),
    quiet("eGFR 33914-3 only", _renal(lab("E", EGFR_MDRD, 62, "2025-11-20"))),
    fires("neither", _renal(), "HOLD", lab_lookback_days="90"),
    fires("creatinine before the window", _renal(lab("C", CREATININE, 1.1, "2025-09-01")), "HOLD"),
    quiet("creatinine on the first day of the window", _renal(lab("C", CREATININE, 1.1, "2025-09-02"))),
    fires("creatinine PRELIMINARY", _renal(lab("C", CREATININE, 1.1, "2025-11-20", status="PRELIMINARY")), "HOLD"),
    fires("eGFR without a value", _renal(lab("E", EGFR, None, "2025-11-20")), "HOLD"),
    fires("potassium is not renal function", _renal(lab("K", "2823-3", 4.1, "2025-11-20")), "HOLD"),
]


RENAL_DECLINING = [
    quiet("eGFR 62, creatinine 1.1", {}),
    quiet("eGFR 30 (not < 30)", _renal(lab("E", EGFR, 30, "2025-11-20"))),
    fires("eGFR 29.9", _renal(lab("E", EGFR, 29.9, "2025-11-20")), "HOLD", egfr="29.9"),
    fires("MDRD eGFR 25", _renal(lab("E", EGFR_MDRD, 25, "2025-11-20")), "HOLD", egfr="25"),
    quiet(
        "older eGFR 25, newest 45",
        _renal(lab("E1", EGFR, 25, "2025-10-01"), lab("E2", EGFR_2009, 45, "2025-11-20")),
    ),
    fires(
        "older eGFR 45, newest 25",
        _renal(lab("E1", EGFR, 45, "2025-10-01"), lab("E2", EGFR, 25, "2025-11-20")),
        "HOLD",
        egfr="25",
    ),
    quiet(
        "eGFR 20 outside the window", _renal(lab("E1", EGFR, 20, "2025-08-01"), lab("C", CREATININE, 1.1, "2025-11-20"))
    ),
    fires(
        "creatinine 1.0 then 1.5 (≥ 1.5 ×)",
        _renal(lab("C1", CREATININE, 1.0, "2025-10-01"), lab("C2", CREATININE, 1.5, "2025-11-20")),
        "HOLD",
        creatinine="1.5",
        lowest_creatinine="1",
    ),
    quiet(
        "creatinine 1.0 then 1.49",
        _renal(lab("C1", CREATININE, 1.0, "2025-10-01"), lab("C2", CREATININE, 1.49, "2025-11-20")),
    ),
    quiet(
        "creatinine 1.5 then 1.0 (the newest is the lowest)",
        _renal(lab("C1", CREATININE, 1.5, "2025-10-01"), lab("C2", CREATININE, 1.0, "2025-11-20")),
    ),
    fires(
        "the lowest is any in the window, not the first: 1.2, 0.9, 1.4",
        _renal(
            lab("C1", CREATININE, 1.2, "2025-09-10"),
            lab("C2", CREATININE, 0.9, "2025-10-01"),
            lab("C3", CREATININE, 1.4, "2025-11-20"),
        ),
        "HOLD",
        lowest_creatinine="0.9",
    ),
    quiet(
        "a lower creatinine before the window does not count",
        _renal(
            lab("C0", CREATININE, 0.8, "2025-08-01"),
            lab("C1", CREATININE, 1.0, "2025-10-01"),
            lab("C2", CREATININE, 1.4, "2025-11-20"),
        ),
    ),
    quiet(
        "a lower PRELIMINARY creatinine does not count",
        _renal(
            lab("C1", CREATININE, 0.6, "2025-10-01", status="PRELIMINARY"),
            lab("C2", CREATININE, 1.0, "2025-11-20"),
        ),
    ),
    quiet(
        "a CORRECTED creatinine replaces the high FINAL one",
        _renal(
            lab("C1", CREATININE, 1.0, "2025-10-01"),
            lab("C2", CREATININE, 2.0, "2025-11-20"),
            lab("C2", CREATININE, 1.1, "2025-11-20", status="CORRECTED"),
        ),
    ),
    fires(
        "both comparisons fire: evidence has both",
        _renal(
            lab("E", EGFR, 22, "2025-11-20"),
            lab("C1", CREATININE, 1.0, "2025-10-01"),
            lab("C2", CREATININE, 2.0, "2025-11-20"),
        ),
        "HOLD",
        egfr="22",
        creatinine="2",
    ),
]


LIVER_LABS = [LEVEL, *RENAL]

HEPATIC_MISSING = [
    quiet("liver with ALT", {}, organ="LIVER"),
    fires("liver without hepatic tests", {"labs": LIVER_LABS}, "HOLD", organ="LIVER"),
    quiet("liver with AST only", {"labs": [*LIVER_LABS, lab("H", AST, 30, "2025-11-20")]}, organ="LIVER"),
    quiet("liver with bilirubin only", {"labs": [*LIVER_LABS, lab("H", BILIRUBIN, 0.8, "2025-11-20")]}, organ="LIVER"),
    fires(
        "liver, ALT before the window", {"labs": [*LIVER_LABS, lab("H", ALT, 30, "2025-09-01")]}, "HOLD", organ="LIVER"
    ),
    fires(
        "liver, ALT CANCELLED",
        {"labs": [*LIVER_LABS, lab("H", ALT, 30, "2025-11-20", status="CANCELLED")]},
        "HOLD",
        organ="LIVER",
    ),
    fires(
        "liver, ALT without a value", {"labs": [*LIVER_LABS, lab("H", ALT, None, "2025-11-20")]}, "HOLD", organ="LIVER"
    ),
    quiet("kidney without hepatic tests", {"labs": LIVER_LABS}),
    quiet("heart without hepatic tests", {"labs": LIVER_LABS, "transplant.organ": "HEART"}),
]


# The generic runner (tests/rules/test_cases.py) decides every case of every rule in this table.
CASES: dict[str, list[Any]] = {
    "trough-missing": TROUGH_MISSING,
    "trough-out-of-range": TROUGH_OUT_OF_RANGE,
    "renal-function-missing": RENAL_MISSING,
    "renal-function-declining": RENAL_DECLINING,
    "hepatic-function-missing": HEPATIC_MISSING,
}

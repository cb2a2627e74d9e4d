"""Overlapping therapy and interactions (rules.md), including INFO vs DENY_RISK for justified overlaps."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import (
    DOS,
    TACROLIMUS_LEVEL,
    TACROLIMUS_TROUGH,
    build,
    check,
    decide,
    drug,
    fires,
    lab,
    prescription,
    quiet,
)

JUSTIFIED = {"clinical_justification": "Conversion in progress; cyclosporine tapered off by day 3."}


CYCLOSPORINE = [
    quiet("no cyclosporine", {}),
    fires(
        "cyclosporine active on DOS",
        {"prescriptions+": [drug("RX-CSA", "cyclosporine")]},
        "DENY_RISK",
        prescription_ids="RX-CSA",
        unjustified="RX-CSA",
    ),
    fires("tall-man CycloSPORINE", {"prescriptions+": [drug("RX-CSA", "CycloSPORINE")]}, "DENY_RISK"),
    fires(
        "cyclosporine justified: INFO",
        {"prescriptions+": [drug("RX-CSA", "cyclosporine", **JUSTIFIED)]},
        "INFO",
        unjustified="",
    ),
    fires(
        "matched tacrolimus prescription justified: INFO",
        {
            "rx.clinical_justification": JUSTIFIED["clinical_justification"],
            "prescriptions+": [drug("RX-CSA", "cyclosporine")],
        },
        "INFO",
    ),
    fires(
        "one of two overlaps unjustified: DENY_RISK",
        {"prescriptions+": [drug("RX-CSA-1", "cyclosporine", **JUSTIFIED), drug("RX-CSA-2", "cyclosporine")]},
        "DENY_RISK",
        prescription_ids="RX-CSA-1,RX-CSA-2",
        unjustified="RX-CSA-2",
    ),
    fires(
        "empty justification is not a justification",
        {"prescriptions+": [drug("RX-CSA", "cyclosporine", clinical_justification="")]},
        "DENY_RISK",
    ),
    fires(
        "cyclosporine COMPLETED is active",
        {"prescriptions+": [drug("RX-CSA", "cyclosporine", status="COMPLETED")]},
        "DENY_RISK",
    ),
    fires(
        "cyclosporine ending on DOS", {"prescriptions+": [drug("RX-CSA", "cyclosporine", end_date=DOS)]}, "DENY_RISK"
    ),
    quiet(
        "cyclosporine ended the day before", {"prescriptions+": [drug("RX-CSA", "cyclosporine", end_date="2025-11-30")]}
    ),
    quiet(
        "cyclosporine starting after DOS", {"prescriptions+": [drug("RX-CSA", "cyclosporine", start_date="2025-12-02")]}
    ),
    quiet("cyclosporine STOPPED", {"prescriptions+": [drug("RX-CSA", "cyclosporine", status="STOPPED")]}),
    quiet(
        "cyclosporine superseded by a later STOPPED event",
        {"prescriptions+": [drug("RX-CSA", "cyclosporine"), drug("RX-CSA", "cyclosporine", status="STOPPED")]},
    ),
]


def _er(prescription_id: str = "RX-ER", **fields: Any) -> dict[str, Any]:
    return prescription(prescription_id, formulation="EXTENDED_RELEASE", **fields)


EXTENDED_RELEASE = [
    quiet("IR only", {}),
    fires(
        "an ER tacrolimus prescription active besides the matched IR one",
        {"prescriptions+": [_er()]},
        "DENY_RISK",
        prescription_ids="RX-ER",
    ),
    fires("ER justified: INFO", {"prescriptions+": [_er(**JUSTIFIED)]}, "INFO"),
    fires(
        "matched IR prescription justified: INFO",
        {"rx.clinical_justification": "Switching to Envarsus this week.", "prescriptions+": [_er()]},
        "INFO",
    ),
    fires(
        "one of two ER overlaps unjustified: DENY_RISK",
        {"prescriptions+": [_er("RX-ER-1", **JUSTIFIED), _er("RX-ER-2")]},
        "DENY_RISK",
        unjustified="RX-ER-2",
    ),
    fires(
        "unnamed line: the IR one is matched, the ER one overlaps",
        {"line.prescription_id": None, "prescriptions+": [_er(start_date="2025-11-01")]},
        "DENY_RISK",
    ),
    quiet("ER stopped", {"prescriptions+": [_er(status="STOPPED")]}),
    quiet("ER ended before DOS", {"prescriptions+": [_er(end_date="2025-11-30")]}),
    quiet(
        "the matched prescription itself is ER (wrong-code-for-product's case)", {"rx.formulation": "EXTENDED_RELEASE"}
    ),
    quiet(
        "tacrolimus injection is not extended-release",
        {"prescriptions+": [prescription("RX-IV", formulation="INJECTION", route="INTRAVENOUS")]},
    ),
    quiet(
        "extended-release of another drug",
        {"prescriptions+": [drug("RX-NIF", "nifedipine", formulation="EXTENDED_RELEASE")]},
    ),
]


def test_justified_overlap_is_info_and_changes_nothing() -> None:
    decision = decide(build({"prescriptions+": [drug("RX-CSA", "cyclosporine", **JUSTIFIED), _er(**JUSTIFIED)]}))
    (line,) = decision.lines
    assert {finding.rule_id: finding.outcome for finding in line.findings} == {
        "concurrent-cyclosporine": "INFO",
        "concurrent-extended-release-tacrolimus": "INFO",
    }
    assert line.outcome == "ACCEPT"
    assert decision.outcome == "ACCEPT"


# The strong CYP3A4 inhibitors and inducers of rules.md, as a prescriber might spell them.
STRONG_CYP3A4 = [
    "ketoconazole", "itraconazole", "voriconazole", "posaconazole", "clarithromycin", "telithromycin",
    "ritonavir", "nelfinavir", "rifampin", "rifabutin", "carbamazepine", "phenytoin", "phenobarbital",
    "st johns wort",
]  # fmt: skip


@pytest.mark.parametrize("ingredient", [*STRONG_CYP3A4, "St John's wort", "Clarithromycin"])
def test_every_strong_cyp3a4_drug_needs_a_level(ingredient: str) -> None:
    # Started 2025-11-25, after the baseline's last level (2025-11-20).
    check(
        "interacting-drug-without-level",
        {"prescriptions+": [drug("RX-INT", ingredient, start_date="2025-11-25")]},
        "HOLD",
        {"prescription_ids": "RX-INT", "started": "2025-11-25"},
    )


def _interacting(start_date: str = "2025-11-25", name: str = "clarithromycin", **fields: Any) -> dict[str, Any]:
    return drug(f"RX-{name[:4].upper()}", name, start_date=start_date, **fields)


INTERACTING = [
    quiet("no interacting drug", {}),
    fires("started after the last level", {"prescriptions+": [_interacting()]}, "HOLD", drugs="clarithromycin"),
    quiet("a level drawn on the start date counts", {"prescriptions+": [_interacting("2025-11-20")]}),
    quiet("started before the last level", {"prescriptions+": [_interacting("2025-11-01")]}),
    quiet(
        "a trough (77348-1) drawn after the start counts",
        {"prescriptions+": [_interacting()], "labs+": [lab("OBS-TR", TACROLIMUS_TROUGH, 9.0, "2025-11-28")]},
    ),
    quiet(
        "a level on the DOS counts",
        {"prescriptions+": [_interacting()], "labs+": [lab("OBS-TR", TACROLIMUS_LEVEL, 9.0, DOS)]},
    ),
    fires(
        "a level after the DOS does not count",
        {"prescriptions+": [_interacting()], "labs+": [lab("OBS-TR", TACROLIMUS_LEVEL, 9.0, "2025-12-03")]},
        "HOLD",
    ),
    fires(
        "a PRELIMINARY level does not count",
        {
            "prescriptions+": [_interacting()],
            "labs+": [lab("OBS-TR", TACROLIMUS_LEVEL, 9.0, "2025-11-28", status="PRELIMINARY")],
        },
        "HOLD",
    ),
    fires(
        "a level without a value does not count",
        {"prescriptions+": [_interacting()], "labs+": [lab("OBS-TR", TACROLIMUS_LEVEL, None, "2025-11-28")]},
        "HOLD",
    ),
    fires(
        "every drug without a level is in evidence",
        {"prescriptions+": [_interacting(), _interacting(name="rifampin")]},
        "HOLD",
        drugs="clarithromycin,rifampin",
    ),
    quiet("fluconazole (moderate) is not listed", {"prescriptions+": [_interacting(name="fluconazole")]}),
    quiet("erythromycin (moderate) is not listed", {"prescriptions+": [_interacting(name="erythromycin")]}),
    quiet("the interacting drug is stopped", {"prescriptions+": [_interacting(status="STOPPED")]}),
    quiet("the interacting drug ended before DOS", {"prescriptions+": [_interacting(end_date="2025-11-28")]}),
]


SIROLIMUS = [
    fires("liver", {"prescriptions+": [drug("RX-SIR", "sirolimus")]}, "HOLD", organ="LIVER", prescription_ids="RX-SIR"),
    fires("heart", {"transplant.organ": "HEART", "prescriptions+": [drug("RX-SIR", "sirolimus")]}, "HOLD"),
    fires("heart-lung", {"transplant.organ": "HEART_LUNG", "prescriptions+": [drug("RX-SIR", "sirolimus")]}, "HOLD"),
    quiet("kidney", {"prescriptions+": [drug("RX-SIR", "sirolimus")]}),
    quiet("lung", {"transplant.organ": "LUNG", "prescriptions+": [drug("RX-SIR", "sirolimus")]}),
    quiet("no transplant record", {"transplant": None, "prescriptions+": [drug("RX-SIR", "sirolimus")]}),
    quiet("liver without sirolimus", {}, organ="LIVER"),
    quiet(
        "liver, sirolimus stopped", {"prescriptions+": [drug("RX-SIR", "sirolimus", status="STOPPED")]}, organ="LIVER"
    ),
    quiet("liver, everolimus is not sirolimus", {"prescriptions+": [drug("RX-EVR", "everolimus")]}, organ="LIVER"),
]


# The generic runner (tests/rules/test_cases.py) decides every case of every rule in this table.
CASES: dict[str, list[Any]] = {
    "concurrent-cyclosporine": CYCLOSPORINE,
    "concurrent-extended-release-tacrolimus": EXTENDED_RELEASE,
    "interacting-drug-without-level": INTERACTING,
    "sirolimus-with-liver-or-heart": SIROLIMUS,
}

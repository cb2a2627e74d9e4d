"""Payer requirements (rules/payer.py): prior authorization, specialty pharmacies, step therapy, formularies."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from worker.devkit.synthetic.model import Breaking
from worker.devkit.synthetic.reference import RETAIL_PHARMACIES
from worker.devkit.synthetic.scenario import Scenario

if TYPE_CHECKING:
    from worker.devkit.synthetic.patient import PatientSimulation


def _no_valid_authorization(patient: PatientSimulation, b: Breaking) -> None:
    """None on file, expired, or denied."""
    variant, authorization = b.plan.variant, b.claim["prior_authorization"]
    if variant < 4:
        b.claim["prior_authorization"] = None
    elif variant < 7:
        expired = b.plan.date_of_service - timedelta(days=patient.rng.randint(1, 20))
        authorization.update(valid_to=expired.isoformat(), valid_from=(expired - timedelta(days=180)).isoformat())
    else:
        authorization["status"] = "DENIED"


def _retail_pharmacy(patient: PatientSimulation, b: Breaking) -> None:
    pharmacy, billing = patient.rng.choice(RETAIL_PHARMACIES)
    b.claim.update(dispensing_pharmacy_npi=pharmacy, billing_provider_npi=billing)


def _brand_first(patient: PatientSimulation, b: Breaking) -> None:
    for each in b.j7507:
        each["ndc"] = patient.catalog.brands[b.strength[each["ndc"]]][0]


def _non_preferred(patient: PatientSimulation, b: Breaking) -> None:
    line = next(each for each in b.j7507 if patient.non_preferred_for(b.strength[each["ndc"]]))
    line["ndc"] = patient.non_preferred_for(b.strength[line["ndc"]])


SCENARIOS = (
    Scenario(
        "prior-auth-missing",
        "payer",
        "prior-auth-missing",
        weight=1.5,
        fixable=True,
        applies=lambda patient, slot: patient.payer.requires_prior_auth,
        breaks=_no_valid_authorization,
    ),
    Scenario(
        "prior-auth-pending",
        "payer",
        "prior-auth-pending",
        weight=1.5,
        fixable=True,
        applies=lambda patient, slot: patient.payer.requires_prior_auth,
        breaks=lambda patient, b: b.claim["prior_authorization"].update(
            status="PENDING", valid_from=None, valid_to=None
        ),
    ),
    Scenario(
        "retail-pharmacy",
        "payer",
        "specialty-pharmacy-required",
        weight=2.5,
        applies=lambda patient, slot: bool(patient.payer.specialty_pharmacy_npis),
        breaks=_retail_pharmacy,
    ),
    Scenario(
        "brand-first",
        "payer",
        "step-therapy-not-met",
        weight=5.0,
        fixable=True,
        applies=lambda patient, slot: patient.payer.step_therapy and slot.refills == 0 and not patient.daw,
        breaks=_brand_first,
    ),
    Scenario(
        "non-preferred-ndc",
        "payer",
        "non-preferred-product",
        weight=5.0,
        fixable=True,
        applies=lambda patient, slot: any(patient.non_preferred_for(strength) for strength in slot.strengths),
        breaks=_non_preferred,
    ),
)

"""A synthetic patient's claims: clean by construction, then given their problem; resubmissions; planted rules."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, cast

from worker.devkit.synthetic.lab_series import PatientLabs
from worker.devkit.synthetic.model import Breaking, ClaimPlan, Record, coverage_end
from worker.devkit.synthetic.scenario import Scenario

if TYPE_CHECKING:
    from worker.devkit.synthetic.patient import PatientSimulation


class PatientClaims(PatientLabs):
    """Claims built from the plan: exact units, KX where Medicare expects it, one deliberate problem at most."""

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

    def _build_claim(self, plan: ClaimPlan, claim_id: str, version: int, scenario: Scenario | None) -> Record:
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

    def _break(self, claim: Record, plan: ClaimPlan, scenario: Scenario) -> None:
        """Give a clean claim its deliberate problem."""
        rng = self.rng
        j7507 = [line for line in claim["lines"] if line["hcpcs_code"] == "J7507"]
        line = rng.choice(j7507)  # drawn for every problem, used by some: a stable draw keeps the seed's data
        strength: dict[str | None, float] = {c.ndc: c.strength_mg for c in plan.regimen.components}
        if scenario.breaks is not None:
            scenario.breaks(cast("PatientSimulation", self), Breaking(claim, plan, j7507, line, strength))

    def _planted(self, claim: Record, plan: ClaimPlan, scenario: Scenario | None) -> frozenset[str]:
        rules: set[str] = set()
        if not any(line["hcpcs_code"] == "J7507" for line in claim["lines"]):
            return frozenset()  # skipped by the worker
        if scenario is not None:
            if scenario.rule_id is not None:
                rules.add(scenario.rule_id)
            if scenario.also_planted is not None:
                rules |= scenario.also_planted(cast("PatientSimulation", self), claim)
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
            and plan.date_of_service > coverage_end(date.fromisoformat(transplant["transplant_date"]))
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

    def emit_claim(
        self,
        plan: ClaimPlan,
        claim_id: str,
        version: int,
        claim_time: int,
        scenario: Scenario | None,
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

    def _maybe_resubmit(self, plan: ClaimPlan, claim_id: str, claim_time: int, scenario: Scenario | None) -> None:
        """A resubmission (claim_version 2): a correction for some fixable problems, else a charge fix."""
        rng = self.rng
        later = claim_time + rng.randint(1, 4) * 1440 + rng.randint(-120, 120)
        problem = scenario
        if problem is not None and problem.fixable and rng.random() < 0.3:
            self.emit_claim(plan, claim_id, 2, later, None)
        elif (problem is None and rng.random() < 0.015) or (
            problem is not None and problem.lab_group and rng.random() < 0.1
        ):
            self.emit_claim(plan, claim_id, 2, later, scenario, charge_factor=1.04)

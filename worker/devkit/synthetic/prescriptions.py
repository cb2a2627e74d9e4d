"""A synthetic patient's prescriptions: the tacrolimus regimen, standing medications, changes by event."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from worker.devkit.synthetic.model import ClaimPlan, EventKind, Record, Regimen, SyntheticEvent, minutes
from worker.devkit.synthetic.profile import PatientProfile


class PatientPrescriptions(PatientProfile):
    """Emits events (the patient's timeline) and the prescription events among them."""

    def _emit(self, kind: EventKind, day: date, minute: int, record: Record) -> None:
        key, stamp = minutes(day, minute)
        record["event_time"] = stamp
        # claims sort after context events of the same minute: a claim relies on what precedes it
        self.events.append((key * 2 + (kind == "claim"), SyntheticEvent(kind, self.patient_id, record)))

    def publish(self, prescription_id: str, day: date, minute: int, **changes: Any) -> None:
        """Record a prescription event; later events with the same id replace earlier ones."""
        state = self.prescriptions[prescription_id]
        state.update(changes)
        self._emit("prescription", day, minute, {"event_id": None, "event_time": None, **state})

    def new_prescription(
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
        self.publish(prescription_id, day, minute)
        return prescription_id

    def _emit_regimen(self, regimen: Regimen, previous: Regimen | None) -> None:
        minute = self.rng.randint(540, 1020)
        justification = (
            "Brand Prograf: trough variability after a generic switch; transplant team requires brand."
            if self.daw
            else None
        )
        for c in regimen.components:
            self.new_prescription(
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
            self.publish(component.prescription_id, regimen.announced, minute + 5, status=status, end_date=end)

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
            self.new_prescription(
                day, rng.randint(480, 600), ingredient, started, strength, dose, per_day, formulation=delayed
            )
        if early:  # infection prophylaxis for the first months
            for ingredient, strength in (("valganciclovir", 450.0), ("sulfamethoxazole-trimethoprim", 800.0)):
                ends = self.transplant_date + timedelta(days=180)
                self.new_prescription(
                    day, rng.randint(480, 600), ingredient, started, strength, strength, 1, end_date=ends
                )

    def context_day(self, plan: ClaimPlan, previous_day: date | None) -> date:
        """A day shortly before the claim and after the previous one (for records created just in time)."""
        day = plan.date_of_service - timedelta(days=self.rng.randint(1, 3))
        if previous_day is not None:
            day = max(day, previous_day + timedelta(days=2))
        day = max(day, plan.regimen.announced + timedelta(days=1))
        return min(day, plan.date_of_service)

    def stop_latest(self, ingredient: str, day: date, minute: int, end: date, formulation: str | None = None) -> None:
        for prescription_id, state in reversed(self.prescriptions.items()):
            if state["ingredient"] == ingredient and (formulation is None or state["formulation"] == formulation):
                self.publish(prescription_id, day, minute, status="STOPPED", end_date=end.isoformat())
                return

    # --- labs ---------------------------------------------------------------------------------------

"""A synthetic patient's lab series: baseline draws, preliminary and corrected results, reshaped draws."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, cast

from worker.devkit.synthetic.model import ClaimPlan, Draw, ckd_epi_egfr, minutes
from worker.devkit.synthetic.prescriptions import PatientPrescriptions
from worker.devkit.synthetic.reference import CREATININE, DEFAULT_TROUGH_USUAL, HEPATIC, POTASSIUM, TROUGH_USUAL
from worker.devkit.synthetic.scenario import Suppressed

if TYPE_CHECKING:
    from worker.devkit.synthetic.patient import PatientSimulation


class PatientLabs(PatientPrescriptions):
    """Trough, renal and (liver recipients) hepatic series, shaped around the claims that plan a lab problem."""

    def _emit_labs(self, plans: list[ClaimPlan]) -> None:
        rng, patient = self.rng, cast("PatientSimulation", self)  # what the scenarios' hooks are given
        suppressed: Suppressed = []
        draws: list[Draw] = []
        every_group = ("trough", "renal", "hepatic") if self.organ == "LIVER" else ("trough", "renal")
        for plan in plans:
            recheck = plan.date_of_service + timedelta(days=rng.randint(1, 4))
            if plan.scenario is not None and plan.scenario.reshape_labs is not None:
                plan.scenario.reshape_labs(patient, plan, recheck, suppressed, draws)
        day = self.history_start
        while day <= self.last_day + timedelta(days=10):
            groups = tuple(
                group for group in every_group if not any(g == group and lo <= day <= hi for g, lo, hi in suppressed)
            )
            if groups:
                draws.append(Draw(day, groups))
            since = (day - self.transplant_date).days
            day += timedelta(
                days=rng.randint(6, 9) if since < 60 else rng.randint(12, 18) if since < 150 else rng.randint(21, 42)
            )
        for draw in draws:
            self._emit_draw(draw, suppressed)

    def _trough_usual(self, day: date) -> float:
        early, later = TROUGH_USUAL.get(self.organ, DEFAULT_TROUGH_USUAL)
        low, high = early if self._early(day) else later
        return round(self.rng.uniform(low, high), 1)

    def trough_outside(self, day: date) -> float:
        low, high = self.catalog.trough_targets.trough_range(self.organ, self._early(day))
        if self.rng.random() < 0.5:
            return round(max(1.0, low - self.rng.uniform(0.6, 2.5)), 1)
        return round(high + self.rng.uniform(1.0, 8.0), 1)

    def _emit_draw(self, draw: Draw, suppressed: list[tuple[str, date, date]]) -> None:
        rng, day = self.rng, draw.day
        minute = rng.randint(420, 660)
        effective = minutes(day, minute)[1]
        recorded = minute + rng.randint(150, 420)
        for group in draw.groups:
            if group == "trough":
                value = draw.trough if draw.trough is not None else self._trough_usual(day)
                # a clotted specimen: cancelled, redrawn a day or two later (never the first draw: no level before it)
                if draw.baseline and day > self.history_start and rng.random() < 0.02:
                    self._emit_result(day, effective, recorded, self.trough_code, None, "CANCELLED")
                    redraw = day + timedelta(days=rng.randint(1, 2))
                    if not any(g == "trough" and lo <= redraw <= hi for g, lo, hi in suppressed):
                        again = minutes(redraw, minute)[1]
                        self._emit_result(redraw, again, recorded, self.trough_code, self._trough_usual(redraw))
                else:
                    self._emit_result(day, effective, recorded, self.trough_code, value, variants=draw.baseline)
            elif group == "renal":
                factor = draw.creatinine_factor or rng.uniform(0.93, 1.07)
                creatinine = round(self.creatinine_base * factor, 2)
                self._emit_result(day, effective, recorded, CREATININE, creatinine, variants=draw.baseline)
                egfr = ckd_epi_egfr(creatinine, self.age, self.female)
                self._emit_result(day, effective, recorded, self.egfr_code, egfr)
                if rng.random() < 0.1:
                    self._emit_result(day, effective, recorded, POTASSIUM, round(rng.uniform(3.6, 5.1), 1))
            else:
                for loinc, display, unit, low, high, decimals in HEPATIC:
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

"""One synthetic patient's simulation: a plan of refills with a problem for some, then the events around it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from worker.devkit.synthetic.claims import PatientClaims
from worker.devkit.synthetic.model import ClaimPlan, Regimen, Slot, SyntheticEvent
from worker.devkit.synthetic.scenario import Scenario
from worker.devkit.synthetic.scenarios import BY_FAMILY, CLEAN_INTERACTION, EARLY_DELIVERY

PROBLEM_SHARE = 0.28  # claims given a deliberate problem (natural ones, such as a lapsed ESRD benefit, add a few)
LAB_SCENARIO_SPACING_DAYS = 130  # scenarios reshaping one lab series never overlap (gap 96 + recheck)
CLEAN_INTERACTION_SHARE = 0.03  # clean claims with a strong inhibitor and a follow-up trough


class PatientSimulation(PatientClaims):
    """One patient's profile, claim plan and events; the plan's scenarios shape each step through their hooks."""

    def _plan(self) -> list[ClaimPlan]:
        rng = self.rng
        plans: list[ClaimPlan] = []
        start_dose = self._dose_for(self.first_dos)
        if self.in_window:
            regimen = self._regimen(start_dose, self.discharge_date - timedelta(days=2), self.history_start)
        else:
            # the discharge prescription, or the latest dose change
            started = max(
                self.discharge_date - timedelta(days=2), self.first_dos - timedelta(days=rng.randint(15, 400))
            )
            regimen = self._regimen(start_dose, started, self.history_start)
        date_of_service = self.first_dos
        previous: ClaimPlan | None = None
        last_lab: dict[str, date] = {}
        refills = 0
        while date_of_service <= self.last_day:
            # a dose change is decided first: which problems fit depends on the capsules in use
            changed = previous is not None and rng.random() < (0.35 if self._early(date_of_service) else 0.1)
            if changed:
                regimen = self._regimen(self._dose_for(date_of_service), date_of_service, date_of_service)
            slot = Slot(refills, date_of_service, previous, regimen, last_lab, changed, self.history_start)
            scenario = self._pick_scenario(slot)
            if scenario is not None and scenario.reschedule is not None:
                date_of_service = scenario.reschedule(self, previous)
            if changed and previous is not None:
                # written after the previous fill, effective by this one
                earliest = max(previous.date_of_service + timedelta(days=3), date_of_service - timedelta(days=4))
                started = earliest + timedelta(days=rng.randint(0, max(0, (date_of_service - earliest).days)))
                regimen = replace(regimen, start_date=started, announced=started - timedelta(days=1))
            days_supply = min(self.cadence, self.payer.days_supply_limit(date_of_service))
            if scenario is not None and scenario.days_supply is not None:
                days_supply = scenario.days_supply(self)
            if scenario is None and "trough" not in last_lab and rng.random() < CLEAN_INTERACTION_SHARE:
                scenario = CLEAN_INTERACTION
            plan = ClaimPlan("refill", date_of_service, days_supply, regimen, scenario)
            self._prepare(plan, previous)
            if scenario is not None and scenario.lab_group:
                last_lab[scenario.lab_group] = date_of_service
            plans.append(plan)
            if scenario is not None and scenario.after_plan is not None:
                regimen = scenario.after_plan(self, plan, regimen)
            early_by = rng.randint(0, self.payer.refill_window_days - 2)
            next_date = date_of_service + timedelta(days=days_supply - early_by + rng.choice((0, 0, 0, 2, 4)))
            if self.mycophenolate and rng.random() < 0.03 and (next_date - date_of_service).days > 16:
                # a mycophenolate-only fill between tacrolimus refills: no J7507 line
                supply_day = date_of_service + timedelta(days=rng.randint(6, 12))
                plans.append(ClaimPlan("supply-only", supply_day, 30, regimen))
            previous = plan
            refills += 1
            date_of_service = next_date
        return plans

    def _pick_scenario(self, slot: Slot) -> Scenario | None:
        rng = self.rng
        if slot.refills == 0 and self.in_window and rng.random() < 0.12:
            return EARLY_DELIVERY
        if rng.random() >= PROBLEM_SHARE:
            return None
        # a family by weight, then one of its problems that fits; a family with none is dropped
        families = self.family_weights.copy()
        while families:
            family = rng.choices(list(families), list(families.values()))[0]
            fitting = [scenario for scenario in BY_FAMILY[family] if self._fits(scenario, slot)]
            if fitting:
                # problems that rarely fit (liver-only, one payer's) are preferred when they do, so every
                # rule shows up even in a few hundred patients: weigh down the ones used often so far
                weights = [scenario.weight / (1 + self.usage[scenario.name]) for scenario in fitting]
                chosen = rng.choices(fitting, weights)[0]
                self.usage[chosen.name] += 1
                return chosen
            del families[family]
        return None

    def _fits(self, scenario: Scenario, slot: Slot) -> bool:
        group = scenario.lab_group
        if group is not None:
            last_lab = slot.last_lab_scenario.get(group)
            if slot.gap < 12 or (last_lab is not None and (slot.day - last_lab).days <= LAB_SCENARIO_SPACING_DAYS):
                return False
        return scenario.applies(self, slot)

    def _prepare(self, plan: ClaimPlan, previous: ClaimPlan | None) -> None:
        """Draw the scenario's dates now, so labs and prescriptions can be shaped around the claim."""
        rng = self.rng
        # just-in-time records come after the previous claim
        after_previous = previous.date_of_service + timedelta(days=3) if previous else self.history_start
        plan.variant = rng.randint(0, 9)
        if plan.scenario is not None and plan.scenario.anchor is not None:
            plan.anchor = plan.scenario.anchor(self, plan, after_previous)

    # --- run -----------------------------------------------------------------------------------------

    def run(self) -> list[tuple[int, SyntheticEvent]]:
        plans = self._plan()
        self._emit_standing_medications()
        self._emit_labs(plans)
        current: Regimen | None = None
        previous_day: date | None = None
        for plan in plans:
            if plan.regimen is not current:
                self._emit_regimen(plan.regimen, current)
                current = plan.regimen
            if plan.kind == "supply-only":
                self.emit_claim(plan, self.ids.next("CLM"), 1, self._claim_time(plan), None)
                continue
            self._emit_context_before(plan, previous_day)
            claim_time = self._claim_time(plan)
            claim_id = self.ids.next("CLM")
            scenario = plan.scenario if plan.scenario is not None and plan.scenario.problem else None
            if scenario is not None and scenario.delay is not None:
                claim_time += scenario.delay(self)
            if scenario is not None and scenario.bill is not None:
                scenario.bill(self, plan, claim_id, claim_time)
            else:
                self.emit_claim(plan, claim_id, 1, claim_time, scenario)
                self._maybe_resubmit(plan, claim_id, claim_time, scenario)
            self._emit_context_after(plan, claim_time)
            previous_day = plan.date_of_service
        return self.events

    def _claim_time(self, plan: ClaimPlan) -> int:
        """Minutes after midnight of the DOS: pharmacies bill on the day, a few the next day."""
        lag = 1440 if self.rng.random() < 0.12 else 0
        return lag + self.rng.randint(660, 1140)

    def _emit_context_before(self, plan: ClaimPlan, previous_day: date | None) -> None:
        minute = self.rng.randint(420, 600)  # drawn for every claim: a stable draw keeps the seed's data
        if plan.scenario is not None and plan.scenario.context_before is not None:
            plan.scenario.context_before(self, plan, previous_day, minute)

    def _emit_context_after(self, plan: ClaimPlan, claim_time: int) -> None:
        """Clean-up a pharmacist or clinician would do after the claim (so later claims are clean)."""
        day = plan.date_of_service
        minute = claim_time + self.rng.randint(1, 3) * 1440
        cleanup_day = day + timedelta(days=minute // 1440)
        if plan.scenario is not None and plan.scenario.context_after is not None:
            plan.scenario.context_after(self, plan, minute, cleanup_day)

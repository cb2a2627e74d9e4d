"""One planted problem: its rule, its weight, when it fits a claim and how it changes the claim or its context.

A scenario is data plus a few hooks, each called at one step of a patient's simulation; a hook left at its
default changes nothing and draws no random numbers, so the hooks a scenario sets are all it does. The
steps, in the order the simulation takes them:

- `applies(patient, slot)`: whether the problem fits the next claim (lab scenarios are also spaced apart);
- `reschedule(patient, previous)`: another date of service (an early refill, a fill before discharge);
- `days_supply(patient)`: another days' supply;
- `anchor(patient, plan, after_previous)`: the scenario's own date, drawn when the claim is planned;
- `after_plan(patient, plan, regimen)`: the regimen the next claims use (a lapsed order renewed);
- `reshape_labs(patient, plan, recheck, suppressed, draws)`: lab draws moved, forced or left out;
- `context_before(patient, plan, previous_day, minute)`: prescriptions recorded before the claim;
- `delay(patient)`: minutes the claim is billed late;
- `bill(patient, plan, claim_id, claim_time)`: emits the claim itself (a duplicate under a new id);
- `breaks(patient, breaking)`: the change to the clean claim;
- `also_planted(patient, claim)`: rules the problem triggers besides its own;
- `context_after(patient, plan, minute, cleanup_day)`: the clean-up after the claim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from worker.devkit.synthetic.model import Breaking, ClaimPlan, Draw, Record, Regimen, Slot

if TYPE_CHECKING:
    from worker.devkit.synthetic.patient import PatientSimulation

Suppressed = list[tuple[str, date, date]]  # (lab group, first day, last day) without baseline draws


def _always(patient: PatientSimulation, slot: Slot) -> bool:
    return True


@dataclass(frozen=True)
class Scenario:
    name: str
    family: str  # the rule family (worker/engine/rules/<family>.py)
    rule_id: str | None  # the rule the problem is meant to trigger; None: context that is not a problem
    weight: float = 1.0
    fixable: bool = False  # a resubmission (claim_version 2) can correct it
    lab_group: str | None = None  # the lab series (trough, renal, hepatic) it reshapes around the claim
    applies: Callable[[PatientSimulation, Slot], bool] = _always
    reschedule: Callable[[PatientSimulation, ClaimPlan | None], date] | None = None
    days_supply: Callable[[PatientSimulation], int] | None = None
    anchor: Callable[[PatientSimulation, ClaimPlan, date], date] | None = None
    after_plan: Callable[[PatientSimulation, ClaimPlan, Regimen], Regimen] | None = None
    reshape_labs: Callable[[PatientSimulation, ClaimPlan, date, Suppressed, list[Draw]], None] | None = None
    context_before: Callable[[PatientSimulation, ClaimPlan, date | None, int], None] | None = None
    delay: Callable[[PatientSimulation], int] | None = None
    bill: Callable[[PatientSimulation, ClaimPlan, str, int], None] | None = None
    breaks: Callable[[PatientSimulation, Breaking], None] | None = None
    also_planted: Callable[[PatientSimulation, Record], frozenset[str]] | None = None
    context_after: Callable[[PatientSimulation, ClaimPlan, int, date], None] | None = None

    @property
    def problem(self) -> bool:
        return self.rule_id is not None


def started_days_before(low: int, high: int) -> Callable[[PatientSimulation, ClaimPlan, date], date]:
    """An anchor hook: `low` to `high` days before the claim, but after the previous claim."""

    def anchor(patient: PatientSimulation, plan: ClaimPlan, after_previous: date) -> date:
        return max(after_previous, plan.date_of_service - timedelta(days=patient.rng.randint(low, high)))

    return anchor

"""Realistic synthetic EHR events for the demo, the throughput benchmark and tests.

Each synthetic patient is a transplant recipient on immediate-release tacrolimus followed for about
six months: prescriptions that change with the dose, lab series (troughs, renal and liver tests,
with preliminary, corrected and cancelled results), monthly or 90-day refill claims and the odd
resubmission. About a quarter of the claims carry one deliberate problem, drawn from every family
of the rule catalogue (rules.md); the rest are clean, as most real claims are. `planted` records
which rule each deliberate problem is meant to trigger, so tests can check the generator and the
rules against each other.

Records are plain dicts in the JSON shape of contract.md. Everything is deterministic for a seed.
The payer-specific settings the generator honours (prior authorization, specialty pharmacies,
supply limits, caps, formularies) mirror the override files in `examples/payer-config/`.

How a patient is simulated: a profile (organ, payer, coverage, weight, products), then a plan of
refill dates with the dose in use and, for some claims, a problem that fits them (a `Scenario` of
`scenarios/`, one module per rule family); then the events. Problems that need context reshape it
around their claim only: a lab series gets a gap or an out-of-range value with a recheck after the
claim, a stray order is recorded just before the claim and closed just after it.
Clean claims are clean by construction: exact units, refills inside the window, a counted trough
within 90 days, KX where Medicare expects it.

Layout: `reference` (payers, codes, the catalogue), `model` (plans, draws, ids, time), the patient in
layers (`profile` < `prescriptions` < `lab_series` < `claims` < `patient`), `scenario` (what a planted
problem is) and `scenarios/` (them all), `dataset` (`generate`). A new rule: one rule function in
worker/engine/rules/<family>.py and one `Scenario` in scenarios/<family>.py.
"""

from worker.devkit.synthetic.dataset import SyntheticDataset, generate, write_bundles
from worker.devkit.synthetic.model import EventKind, Record, SyntheticEvent
from worker.devkit.synthetic.patient import PROBLEM_SHARE
from worker.devkit.synthetic.profile import SPAN_DAYS
from worker.devkit.synthetic.reference import PAYERS, SPECIALTY_PHARMACY_NPIS
from worker.devkit.synthetic.scenarios import SCENARIOS, Scenario

__all__ = [
    "PAYERS",
    "PROBLEM_SHARE",
    "SCENARIOS",
    "SPAN_DAYS",
    "SPECIALTY_PHARMACY_NPIS",
    "EventKind",
    "Record",
    "Scenario",
    "SyntheticDataset",
    "SyntheticEvent",
    "generate",
    "write_bundles",
]

"""The planted problems, one module per rule family like worker/engine/rules/: a new rule, a new scenario there.

`SCENARIOS` keeps the families' order and each family's own order: the generator draws from these lists,
so reordering them changes every seed's data.
"""

from __future__ import annotations

from worker.devkit.synthetic.scenario import Scenario
from worker.devkit.synthetic.scenarios import coding, coverage, labs, order, overlap, payer
from worker.devkit.synthetic.scenarios.overlap import CLEAN_INTERACTION

FAMILIES = (coding, order, coverage, overlap, labs, payer)
SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for family in FAMILIES for scenario in family.SCENARIOS}
BY_FAMILY: dict[str, list[Scenario]] = {}
for _scenario in SCENARIOS.values():
    BY_FAMILY.setdefault(_scenario.family, []).append(_scenario)
EARLY_DELIVERY = SCENARIOS["early-delivery"]

__all__ = ["BY_FAMILY", "CLEAN_INTERACTION", "EARLY_DELIVERY", "FAMILIES", "SCENARIOS", "Scenario"]

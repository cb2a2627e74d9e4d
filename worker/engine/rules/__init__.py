"""The J7507 rule catalogue: one module per rule family, registered by public rule id."""

from worker.engine.rules import coding, coverage, labs, order, overlap, payer  # noqa: F401  (registers the rules)
from worker.engine.rules.registry import FAMILY_TITLES, RULES, Hit, RuleSpec, rule

# Catalogue order (rules.md): by family as FAMILY_TITLES lists them, then by registration.
_family_rank = {family: rank for rank, family in enumerate(FAMILY_TITLES)}
for _spec in sorted(RULES.values(), key=lambda spec: _family_rank[spec.family]):
    RULES[_spec.rule_id] = RULES.pop(_spec.rule_id)

__all__ = ["FAMILY_TITLES", "RULES", "Hit", "RuleSpec", "rule"]

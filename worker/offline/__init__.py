"""Tools that need no broker: JSON Lines evaluation, the rule catalogue, dead-letter filters and replay
plans, payer override checks.

It may import `worker.engine`, `worker.codec` and `worker.stream`'s pure helpers (claim bounds, the
dead-letter header names); never `worker.devkit` (enforced by `lint-imports`).
"""

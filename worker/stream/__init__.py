"""The Kafka stream worker: the loop and its parts (merge, context feed, offset ledger, rebalance plan),
intake of raw records, dead letters and guarded outputs, polling, claim bounds, the Kafka clients.

It may import `worker.engine`, `worker.codec`, the top-level settings, observability and errors, and
the offline JSON Lines helpers it shares; never `worker.devkit` (enforced by `lint-imports`).
"""

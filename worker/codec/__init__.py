"""Bytes to records and back: Avro (schemas, fast scans), wire formats, the schema registry client, TLS.

It may import `worker.engine` (the records it decodes into), `worker.config` and `worker.errors`; never
`worker.stream`, `worker.offline` or `worker.devkit` (enforced by `lint-imports`). `tls` lives here
because its library user is the registry client (its docstring says more).
"""

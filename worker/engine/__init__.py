"""The decision engine: contract records, patient context, reference data, rules and `Evaluator.decide`.

Pure and broker-free: the stream and the offline tools both call it. It may import only the standard
library, its own modules, third-party parsing libraries (pydantic, PyYAML), `worker.errors` and the
package version (`worker.__version__`); never `worker.codec`, `worker.stream`, `worker.offline` or
`worker.devkit` (enforced by `lint-imports`).
"""

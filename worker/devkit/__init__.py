"""Development kit: the embedded Kafka broker, synthetic EHR events, the history generator and the demo.

It may import anything in `worker`; nothing outside it imports it, except the `demo` command, which
imports `worker.devkit.demo` lazily (the one exception listed in `[tool.importlinter]`).
"""

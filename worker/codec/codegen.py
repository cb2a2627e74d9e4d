"""What the generated Avro readers and writer share: building a function's source line by line,
and defining the functions one compile at a time.

CPython's compiler keeps the memory it took for a long function: the claim reader generated as one
function of 1,400 lines cost 3 MiB of resident memory, the decision writer 640 KiB. So each record
of a schema gets a function of its own (`nested`), and each function is compiled on its own
(`define`): under 160 and 90 KiB.
"""

from __future__ import annotations

import copy
from typing import Any, Self


class FunctionSource:
    """One generated function's body, line by line. A nested one (`nested`) is another function
    of the same unit: they share the constants the code names, the names given out and the list of
    finished functions."""

    def __init__(self, consts: dict[str, Any]) -> None:
        self.lines: list[str] = []
        self.consts = consts
        self.functions: list[str] = []  # finished functions' source, in the order they were made
        self._names = [0]

    def nested(self) -> Self:
        body = copy.copy(self)  # shallow: the same constants, names, functions and settings
        body.lines = []
        return body

    def add(self, line: str, depth: int = 1) -> None:
        self.lines.append("    " * depth + line)

    def fresh(self, prefix: str) -> str:
        """A name not used before in this unit (nested arrays and records each need their own)."""
        self._names[0] += 1
        return f"{prefix}{self._names[0]}"

    def const(self, value: Any) -> str:
        """The name under which the code reads `value`."""
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name


def define(source: FunctionSource, main: str, name: str, filename: str) -> Any:
    """Compile the unit's functions and `main` one at a time into one namespace; returns `name`."""
    namespace: dict[str, Any] = dict(source.consts)
    for function in [*source.functions, main]:
        exec(compile(function + "\n", filename, "exec"), namespace)
    return namespace[name]

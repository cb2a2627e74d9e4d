"""The `run` and `demo` commands (the streaming worker; see worker/stream.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_stream_commands(commands: Any, add_rule_inputs: Callable[[argparse.ArgumentParser], None]) -> None:
    """Registered here so `evaluate` and `rules` never import the Kafka client."""


def run_stream_command(args: argparse.Namespace) -> int:
    raise SystemExit(f"unknown command {args.command}")

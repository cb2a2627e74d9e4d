"""The `run` and `demo` commands. Imported lazily so `evaluate` and `rules` never load Kafka."""

from __future__ import annotations

import argparse
import faulthandler
import signal
from collections.abc import Callable
from typing import Any

import structlog

from worker.config import add_settings_arguments
from worker.errors import ConfigError


def add_stream_commands(commands: Any, add_rule_inputs: Callable[[argparse.ArgumentParser], None]) -> None:
    run = commands.add_parser(
        "run",
        help="run the stream worker against Kafka",
        description=(
            "Consume ClaimSubmitted, PrescriptionRecorded and LabResultRecorded events, publish one "
            "ClaimDecision per claim version, dead-letter bad input; serve /metrics, /livez, /readyz. "
            "Flags override environment variables. SIGTERM/SIGINT: finish the batch, commit, exit 0."
        ),
    )
    add_settings_arguments(run)
    add_rule_inputs(run)

    demo = commands.add_parser(
        "demo",
        help="start an embedded broker, produce synthetic EHR events and decide them all",
        description=(
            "Start the embedded Kafka-protocol broker (or use --bootstrap-servers), create the topics, "
            "produce realistic synthetic EHR events, run the worker until every claim is decided, and "
            "print a summary."
        ),
    )
    demo.add_argument("--patients", type=int, default=300, help="synthetic patients (default 300)")
    demo.add_argument("--seed", type=int, default=7, help="synthetic data seed (default 7)")
    demo.add_argument("--partitions", type=int, default=6, help="partitions per topic (default 6)")
    demo.add_argument(
        "--keep-running", action="store_true", help="after the summary, leave broker and worker up until Ctrl-C"
    )
    add_settings_arguments(demo)
    add_rule_inputs(demo)


def run_stream_command(args: argparse.Namespace) -> int:
    if args.command == "run":
        from worker.app import build_app
        from worker.codec.tls import check_settings_tls
        from worker.config import settings_from

        settings = settings_from(args)
        check_settings_tls(settings)  # a CA that does not sign the broker's certificate: exit 2, named
        app = build_app(settings)
        app.worker.install_signal_handlers()
        # `kill -USR1 <pid>` prints every thread's stack to stderr: how to see where a stuck pod is.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        try:
            app.worker.run()
        except ConfigError:
            raise  # e.g. missing or not co-partitioned topics: exit status 2 with the message
        except Exception:
            # Kafka unreachable past its retries, a decision the broker would not take, context that
            # never caught up: exit non-zero and let Kubernetes restart the pod. Offsets were
            # committed only for acknowledged work, so nothing is lost.
            structlog.get_logger("worker").exception("worker_failed")
            return 1
        finally:
            app.close()
        return 0
    if args.command == "demo":
        from worker.devkit.demo import run_demo

        return run_demo(args)
    raise SystemExit(f"unknown command {args.command}")

"""Resident memory per patient while the worker catches up on years of history (not a test).

For each history length (default 2 and 4 years of the monthly history of worker/devkit/history.py: a
claim, three labs and a quarterly prescription renewal per month), on the embedded broker (or
KAFKA_BOOTSTRAP_SERVERS):

1. produce every patient's history, each record stamped with its event time;
2. run the worker (`python -m worker run`, a child process) on the backlog and sample its resident
   memory (VmRSS) every 50 ms until every claim is decided: the peak, less the resident memory of the
   same worker idle on empty topics (interpreter, libraries, Kafka clients), over the patients, is the
   figure per patient;
3. stop it, start a fresh worker in the same group: it rebuilds the context of the whole backlog as
   of the committed offsets; report its rebuild rate (input records read per second, from the
   assignment to readiness).

Prints one line per history length and the 4-year to 2-year ratio.

    python bench/context_memory.py [--patients 1000] [--years 2 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from kafka import KafkaProducer

from worker.codec.wire import PlainAvro
from worker.devkit.embedded import EmbeddedBroker, create_topics
from worker.devkit.history import HistoryOptions, generate_history
from worker.engine.records import time_ms

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = {"claim": "ClaimSubmitted", "prescription": "PrescriptionRecorded", "lab": "LabResultRecorded"}
ROLES = ("claims", "prescriptions", "lab_results", "decisions", "dead_letter")
SAMPLE_EVERY_S = 0.05


@contextmanager
def broker() -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    with EmbeddedBroker() as embedded:
        yield embedded.bootstrap_servers


def topics(bootstrap: str, partitions: int) -> dict[str, str]:
    names = {role: f"bench-{role.replace('_', '-')}-{uuid.uuid4().hex[:8]}" for role in ROLES}
    create_topics(bootstrap, names.values(), partitions)
    return names


def produce(bootstrap: str, names: dict[str, str], options: HistoryOptions) -> tuple[int, int]:
    """Returns (records, claims) produced."""
    events = generate_history(options)
    wire = PlainAvro()
    where = {"claim": names["claims"], "prescription": names["prescriptions"], "lab": names["lab_results"]}
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    for event in events:
        topic = where[event.kind]
        stamp = time_ms(datetime.fromisoformat(event.record["event_time"].replace("Z", "+00:00")))
        producer.send(
            topic,
            key=event.key.encode(),
            value=wire.encode(SCHEMAS[event.kind], event.record, topic),
            timestamp_ms=stamp,
        )
    producer.flush()
    producer.close()
    return len(events), sum(1 for event in events if event.kind == "claim")


class Worker:
    """`python -m worker run` as a child, with its metrics port and JSON log."""

    def __init__(self, bootstrap: str, names: dict[str, str], group: str, log: Path) -> None:
        self.log = log
        self.port = _free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_GROUP_ID": group,
            "TOPIC_CLAIMS": names["claims"],
            "TOPIC_PRESCRIPTIONS": names["prescriptions"],
            "TOPIC_LAB_RESULTS": names["lab_results"],
            "TOPIC_DECISIONS": names["decisions"],
            "TOPIC_DEAD_LETTER": names["dead_letter"],
            "METRICS_PORT": str(self.port),
            "METRICS_HOST": "127.0.0.1",
            "LOG_LEVEL": "INFO",
            "KAFKA_OPTIONS": "session_timeout_ms=6000,heartbeat_interval_ms=1000",
            "PYTHONUNBUFFERED": "1",
        }
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker", "run"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def metric(self, name: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def events(self) -> list[dict[str, object]]:
        lines = self.log.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for_log(self, event: str, timeout: float = 300.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.events():
                if item.get("event") == event:
                    return item
            time.sleep(0.05)
        raise SystemExit(f"no {event} within {timeout:g}s; see {self.log}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def idle_rss_kib(bootstrap: str, partitions: int, workdir: Path) -> int:
    """The worker on empty topics, joined and ready: what it holds with no context at all."""
    names = topics(bootstrap, partitions)
    worker = Worker(bootstrap, names, f"bench-idle-{uuid.uuid4().hex[:6]}", workdir / "idle.log")
    worker.wait_for_log("worker_ready")
    time.sleep(2.0)
    rss = worker.rss_kib()
    worker.stop()
    return rss


def measure(bootstrap: str, options: HistoryOptions, partitions: int, idle: int, workdir: Path) -> dict[str, float]:
    names = topics(bootstrap, partitions)
    records, claims = produce(bootstrap, names, options)
    group = f"bench-memory-{uuid.uuid4().hex[:6]}"
    worker = Worker(bootstrap, names, group, workdir / f"catch-up-{options.years}y.log")
    peak, started = 0, time.monotonic()
    while worker.metric("j7507_claims_decided_total") + worker.metric("j7507_dead_letters_total") < claims:
        peak = max(peak, worker.rss_kib())
        time.sleep(SAMPLE_EVERY_S)
        if time.monotonic() - started > 1800:
            raise SystemExit("the worker did not catch up within 30 minutes")
    peak = max(peak, worker.rss_kib())
    entries = {kind: worker.metric(f'j7507_context_entries{{kind="{kind}"}}') for kind in ("labs", "prior_claims")}
    worker.stop()
    # A fresh worker in the same group rebuilds everything as of the committed offsets.
    fresh = Worker(bootstrap, names, group, workdir / f"rebuild-{options.years}y.log")
    opened = fresh.wait_for_log("partitions_opened")
    ready = fresh.wait_for_log("worker_ready", timeout=1800)
    seconds = (_stamp(ready) - _stamp(opened)).total_seconds()
    fresh.stop()
    return {
        "records": records,
        "claims": claims,
        "peak_kib": peak,
        "per_patient_kib": (peak - idle) / options.patients,
        "labs_per_patient": entries["labs"] / options.patients,
        "prior_claims_per_patient": entries["prior_claims"] / options.patients,
        "rebuild_s": seconds,
        "rebuild_records_per_s": records / max(seconds, 1e-9),
    }


def _stamp(event: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--years", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    with broker() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        idle = idle_rss_kib(bootstrap, args.partitions, workdir)
        print(f"idle worker (joined, no context): {idle / 1024:.1f} MiB resident")
        results = {}
        for years in args.years:
            result = measure(
                bootstrap, HistoryOptions(patients=args.patients, years=years), args.partitions, idle, workdir
            )
            results[years] = result
            print(
                f"{years} years, {args.patients} patients: {result['records']:,.0f} records, "
                f"peak {result['peak_kib'] / 1024:.1f} MiB while catching up = "
                f"{result['per_patient_kib']:.1f} KiB per patient above idle "
                f"(held per patient: {result['labs_per_patient']:.1f} labs, "
                f"{result['prior_claims_per_patient']:.1f} prior claims); "
                f"fresh worker rebuilt it in {result['rebuild_s']:.1f}s = "
                f"{result['rebuild_records_per_s']:,.0f} records/s"
            )
        if len(args.years) >= 2:
            first, last = args.years[0], args.years[-1]
            ratio = results[last]["per_patient_kib"] / max(results[first]["per_patient_kib"], 1e-9)
            print(f"{last}-year / {first}-year memory per patient: {ratio:.2f}")


if __name__ == "__main__":
    main()

"""The hot path's shortcuts give exactly what the plain computations give (issue 10).

- decision ids computed from the digest are `uuid.uuid5` ids;
- the fast Avro read (logical types converted after reading) returns the same records and, for
  bad payloads, the same error messages as the exact read;
- rules that a pack setting turns off (`applies`) would not have fired for that pack: deciding with
  every rule and with the pack's rule set gives the same decisions;
- cached decimals keep the sign of zero.
"""

from __future__ import annotations

import io
import json
import random
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.avro import AvroCodec, DecodeError
from worker.context import PatientContext
from worker.evaluate import DECISION_NAMESPACE, Evaluator, decision_id
from worker.events import Bundle
from worker.exact import dec, text, whole_units
from worker.offline import decision_json
from worker.reference import load_reference
from worker.rules import RULES
from worker.rules.packs import Pack, load_packs
from worker.synthetic import generate

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCHEMA_OF_KIND = {"claim": "ClaimSubmitted", "prescription": "PrescriptionRecorded", "lab": "LabResultRecorded"}


@given(st.text(max_size=40), st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_decision_id_is_uuid5(claim_id: str, version: int) -> None:
    for pack in load_packs().built_in.values():
        name = f"{claim_id}\x1f{version}\x1f{pack.name}\x1f{pack.version}"
        assert decision_id(claim_id, version, pack) == str(uuid.uuid5(DECISION_NAMESPACE, name))


def _outcome(codec: AvroCodec, payload: bytes) -> tuple[str, Any]:
    try:
        return "record", codec.decode(payload)
    except DecodeError as error:
        return "error", str(error)


@pytest.mark.parametrize("kind", sorted(SCHEMA_OF_KIND))
def test_fast_read_equals_exact_read(kind: str) -> None:
    fast, exact = AvroCodec(SCHEMA_OF_KIND[kind]), AvroCodec(SCHEMA_OF_KIND[kind])
    exact._raw = None
    assert fast._raw is not None  # every contract schema takes the fast read
    rng = random.Random(kind)
    records = [event.record for event in generate(40, seed=9).events if event.kind == kind]
    errors = 0
    for record in records[:150]:
        payload = fast.encode(record)
        assert _outcome(fast, payload) == _outcome(exact, payload)
        assert _outcome(fast, payload)[0] == "record"
        for _ in range(8):  # corrupted, truncated and padded payloads
            mutated = bytearray(payload)
            choice = rng.random()
            if choice < 0.4:
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            elif choice < 0.7:
                mutated = mutated[: rng.randrange(len(mutated))]
            else:
                mutated += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
            fast_outcome = _outcome(fast, bytes(mutated))
            assert fast_outcome == _outcome(exact, bytes(mutated))
            errors += fast_outcome[0] == "error"
    assert errors > 100  # the mutations did reach the error paths


def test_timestamp_out_of_range_keeps_its_message() -> None:
    codec = AvroCodec("LabResultRecorded")
    record = next(event.record for event in generate(3, seed=1).events if event.kind == "lab")
    payload = codec.encode(record)
    exact = AvroCodec("LabResultRecorded")
    exact._raw = None
    # A far effective_time, written through the raw schema (no datetime can hold it).
    raw_schema = codec._raw[0] if codec._raw else None
    assert raw_schema is not None
    raw = fastavro.schemaless_reader(io.BytesIO(payload), raw_schema, None)
    raw["effective_time"] = 2**62
    out = io.BytesIO()
    fastavro.schemaless_writer(out, raw_schema, raw)
    far = out.getvalue()
    assert _outcome(codec, far) == _outcome(exact, far)
    assert _outcome(codec, far) == ("error", "LabResultRecorded: a date or timestamp is out of range")


class _EveryRule(Evaluator):
    """The evaluator as it was: every rule of the pack's family set, `applies` ignored."""

    def _rules_for(self, pack: Pack) -> Any:
        rules = tuple(
            (spec, spec.check) for spec in RULES.values() if pack.settings.medicare_rules or not spec.medicare_only
        )
        return rules, pack.ref


@pytest.mark.parametrize("payer_config", [None, FIXTURES / "payer-config"])
def test_rules_a_pack_turns_off_would_not_fire(payer_config: Path | None) -> None:
    assert any(spec.applies is not None for spec in RULES.values())  # the payer rules
    packs, reference = load_packs(payer_config), load_reference()
    every_rule, pruned = _EveryRule(packs, reference), Evaluator(packs, reference)
    lines = (FIXTURES / "bundles.jsonl").read_text(encoding="utf-8").splitlines()
    payer_ids = set(packs.overrides) | {"ANY-PAYER"}
    for bundle in (Bundle.model_validate(json.loads(raw)["bundle"]) for raw in lines if raw.strip()):
        context = PatientContext.from_lists(bundle.prescriptions, bundle.labs, bundle.prior_claims)
        for payer_type in ("MEDICARE", "MEDICAID", "COMMERCIAL", "OTHER"):
            for payer_id in sorted(payer_ids):
                payer = bundle.claim.payer.model_copy(update={"payer_type": payer_type, "payer_id": payer_id})
                claim = bundle.claim.model_copy(update={"payer": payer})
                expected = decision_json(every_rule.decide(claim, context))
                actual = decision_json(pruned.decide(claim, context))
                expected.pop("decided_at"), actual.pop("decided_at")
                assert actual == expected


def test_cached_decimals_keep_the_sign_of_zero_and_the_value() -> None:
    for value in (0.0, -0.0, 0.8, 1e-300, 123456.789, -2.5):
        assert str(dec(value)) == str(Decimal(repr(value)))
        assert str(dec(value)) == str(dec(value))  # second call: from the cache
        assert text(value) == text(value)
    assert str(dec(-0.0)) == "-0.0"
    assert whole_units(30.0000001) == Decimal(30)
    assert whole_units(-0.0) == Decimal(0)

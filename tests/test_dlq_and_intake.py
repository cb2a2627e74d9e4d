"""Dead letters keep the original bytes; intake classifies bad input without echoing values."""

from __future__ import annotations

import pytest

from worker.codec.wire import PlainAvro
from worker.engine.events import Claim, Prescription
from worker.stream.dlq import dead_letter
from worker.stream.intake import Rejected, read_event

PATIENT = "P-SECRET-4242"
CLAIM = {
    "event_id": "E1",
    "event_time": "2025-12-01T10:00:00Z",
    "claim_id": "C-1",
    "claim_version": 1,
    "patient_id": PATIENT,
    "payer": {"payer_id": "MEDICARE-DME-JC", "payer_type": "MEDICARE"},
    "diagnosis_codes": ["Z94.0"],
    "lines": [{"line_number": 1, "hcpcs_code": "J7507", "units": 30, "date_of_service": "2025-12-01"}],
}


def test_a_valid_claim_is_read() -> None:
    wire = PlainAvro()
    claim = read_event(wire, "claim", PATIENT.encode(), wire.encode("ClaimSubmitted", CLAIM, "t"), Claim)
    assert claim.claim_id == "C-1"
    assert claim.lines[0].is_j7507


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (PATIENT.encode(), b"\x00\x01garbage", "decode"),
        (PATIENT.encode(), None, "decode"),
        (b"someone-else", "valid", "contract"),
        (None, "valid", "contract"),
    ],
)
def test_bad_input_is_rejected_with_its_reason(key: bytes | None, value: bytes | str | None, reason: str) -> None:
    wire = PlainAvro()
    payload = wire.encode("ClaimSubmitted", CLAIM, "t") if value == "valid" else value
    assert not isinstance(payload, str)
    with pytest.raises(Rejected) as caught:
        read_event(wire, "claim", key, payload, Claim)
    assert caught.value.reason == reason
    assert PATIENT not in caught.value.message


def test_a_claim_payload_is_not_a_prescription() -> None:
    wire = PlainAvro()
    with pytest.raises(Rejected) as caught:
        read_event(wire, "prescription", PATIENT.encode(), wire.encode("ClaimSubmitted", CLAIM, "t"), Prescription)
    assert caught.value.reason in ("decode", "contract")
    assert PATIENT not in caught.value.message


def test_dead_letter_keeps_key_value_and_headers_and_adds_the_error() -> None:
    letter = dead_letter(
        topic="ehr.claims.v1",
        partition=3,
        offset=42,
        key=b"k",
        value=b"\xff\xfe",
        headers=[("trace", b"abc")],
        reason="decode",
        error=ValueError("x"),
        message="ClaimSubmitted: truncated payload",
        worker_version="1.2.3",
    )
    assert (letter.key, letter.value) == (b"k", b"\xff\xfe")
    headers = dict(letter.headers)
    assert headers == {
        "trace": b"abc",
        "source_topic": b"ehr.claims.v1",
        "source_partition": b"3",
        "source_offset": b"42",
        "error_reason": b"decode",
        "error_class": b"ValueError",
        "error_message": b"ClaimSubmitted: truncated payload",
        "worker_version": b"1.2.3",
    }


def test_a_replayed_dead_letter_does_not_stack_stale_error_headers() -> None:
    letter = dead_letter(
        topic="t",
        partition=0,
        offset=1,
        key=None,
        value=b"",
        headers=[("error_reason", b"old"), ("x", b"1")],
        reason="contract",
        error=ValueError(),
        message="m",
        worker_version="v",
    )
    names = [name for name, _ in letter.headers]
    assert names.count("error_reason") == 1
    assert dict(letter.headers)["error_reason"] == b"contract"

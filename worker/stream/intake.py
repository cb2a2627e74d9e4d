"""Input records -> domain events: decode, validate against the contract, check the key.

Shared by live processing and by context restore, so a record is judged the same way wherever it
is read. A record that fails raises `Rejected` with the dead-letter reason and a message that
names the field and the problem, never the value.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import ValidationError

from worker.codec.wire import WireFormat
from worker.engine.events import Claim, LabResult, Prescription
from worker.errors import DecodeError
from worker.offline.offline import describe_validation_error
from worker.stream.bounds import claim_lines_problem
from worker.stream.dlq import ContractError, Reason

Kind = Literal["claim", "prescription", "lab"]
SCHEMA_OF: dict[Kind, str] = {
    "claim": "ClaimSubmitted",
    "prescription": "PrescriptionRecorded",
    "lab": "LabResultRecorded",
}

E = TypeVar("E", Claim, Prescription, LabResult)


class Rejected(Exception):
    def __init__(self, reason: Reason, error: BaseException, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.error = error
        self.message = message


def read_event(wire: WireFormat, kind: Kind, key: bytes | None, value: bytes | None, model: type[E]) -> E:
    """Decode and validate one input record; the key must be the event's patient_id (contract.md)."""
    if value is None:
        tombstone = DecodeError("record has no value (tombstone)")
        raise Rejected("decode", tombstone, str(tombstone))
    try:
        fields = wire.decode(SCHEMA_OF[kind], value)
    except DecodeError as error:
        raise Rejected("decode", error, str(error)) from None
    try:
        event = model.model_validate(fields)
    except ValidationError as error:
        raise Rejected("contract", error, f"{SCHEMA_OF[kind]}: {describe_validation_error(error)}") from None
    if key is None or key.decode("utf-8", "replace") != event.patient_id:
        mismatch = ContractError("record key is not the event's patient_id")
        raise Rejected("contract", mismatch, f"{SCHEMA_OF[kind]}: {mismatch} (co-partitioning needs patient_id keys)")
    return event


def check_claim_bounds(claim: Claim, max_lines: int) -> None:
    """Raises `Rejected("contract", ...)` when the claim has more lines than `max_lines` (worker/stream/bounds.py)."""
    problem = claim_lines_problem(claim, max_lines)
    if problem is not None:
        raise Rejected("contract", ContractError(problem), f"ClaimSubmitted: {problem}")

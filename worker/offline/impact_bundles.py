"""Impact analysis over a bundles file (the offline format of `python -m worker evaluate`).

Each bundle is parsed once, strictly (`worker.offline.parse_bundle`), and decided under both
configurations with the bundle as its context. A malformed line is named by its line number and
problem (never its values) and the run goes on, as `evaluate` does.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError

from worker.engine.context import PatientContext
from worker.offline.impact import DualEvaluator, ImpactAnalysis
from worker.offline.offline import MalformedBundle, describe_validation_error, parse_bundle


def analyse_bundles(dual: DualEvaluator, lines: Iterable[str | bytes], analysis: ImpactAnalysis) -> None:
    """Decide every bundle of `lines` under both configurations into `analysis`."""
    for number, raw in enumerate(lines, start=1):
        where = f"line {number}"
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                analysis.bad(where, "line is not valid UTF-8")
                continue
        else:
            text = raw
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        try:
            bundle = parse_bundle(text)
        except ValidationError as error:
            analysis.bad(where, describe_validation_error(error))
            continue
        except MalformedBundle as error:
            analysis.bad(where, str(error))
            continue
        except (ValueError, RecursionError) as error:
            analysis.bad(where, f"cannot parse: {type(error).__name__}")
            continue
        claim = bundle.claim
        if not claim.j7507_lines or not analysis.in_window(claim.event_time):
            continue  # SKIPPED under both, or outside --since/--until
        context = PatientContext.from_lists(bundle.prescriptions, bundle.labs, bundle.prior_claims)
        try:
            baseline, candidate = dual.decide(claim, context, context_as_of=claim.event_time)
        except (ValueError, OverflowError, RecursionError) as error:
            # As `evaluate`: values the models accept but dates cannot hold; the class, not the value.
            analysis.bad(where, f"cannot evaluate: {type(error).__name__} on an out-of-range value")
            continue
        analysis.add(claim, baseline, candidate)

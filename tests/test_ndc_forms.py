"""NDC forms (rules.md "NDC form"): the forms billing offices type, normalized once.

Packages print 10-digit NDCs with dashes (4-4-2, 5-3-2, 5-4-1); claims need the 11-digit 5-4-2
form, made by a leading zero on the short segment. An undashed 10-digit NDC is ambiguous: it stays
unmatched and the finding shows its three candidates. The crosswalk lookup, duplicate-line and the
non-preferred list all compare the normalized form.
"""

from __future__ import annotations

import pytest

from tests.rules.conftest import FORMULARY_PLAN, PROGRAF_1MG, claim_line, findings_for
from worker.engine.reference import load_reference, ndc_candidates, normalize_ndc

FORMS = [
    # (as typed, normalized)
    ("00469061773", "00469061773"),  # 11 digits, undashed: as is
    ("00469-0617-73", "00469061773"),  # 5-4-2 with dashes
    ("0469-0617-73", "00469061773"),  # 4-4-2: zero before the labeler
    ("55111-526-01", "55111052601"),  # 5-3-2: zero before the product
    ("12345-6789-1", "12345678901"),  # 5-4-1: zero before the package
    (" 0469 - 0617 - 73 ", "00469061773"),  # spaces are removed first
    ("0469061773", "0469061773"),  # undashed 10 digits: ambiguous, left as is
    ("469-617-73", "46961773"),  # not a package form: only the dashes go
    ("00469-617-73-1", "00469617731"),  # four segments: only the dashes go
    ("٠٤٦٩-٠٦١٧-٧٣", "٠٤٦٩٠٦١٧٧٣"),  # digits of another script are not NDC digits
]


@pytest.mark.parametrize(("typed", "normalized"), FORMS, ids=[typed for typed, _ in FORMS])
def test_ndc_forms(typed: str, normalized: str) -> None:
    assert normalize_ndc(typed) == normalized


def test_an_undashed_ten_digit_ndc_has_three_candidates() -> None:
    assert ndc_candidates("0469061773") == ("00469061773", "04690061773", "04690617703")
    assert ndc_candidates("00469061773") == ()
    assert ndc_candidates("046906177X") == ()


def _dashed_ten_digit_forms(ndc11: str) -> list[str]:
    """The package forms an 11-digit NDC was padded from: one per segment that starts with 0."""
    labeler, product, package = ndc11[:5], ndc11[5:9], ndc11[9:]
    forms = []
    if labeler.startswith("0"):
        forms.append(f"{labeler[1:]}-{product}-{package}")
    if product.startswith("0"):
        forms.append(f"{labeler}-{product[1:]}-{package}")
    if package.startswith("0"):
        forms.append(f"{labeler}-{product}-{package[1:]}")
    return forms


CROSSWALK_FORMS = [
    (form, ndc11, product.hcpcs)
    for ndc11, product in load_reference().crosswalk.items()
    for form in _dashed_ten_digit_forms(ndc11)
]


def test_every_crosswalk_product_has_a_dashed_ten_digit_form_here() -> None:
    assert {ndc11 for _, ndc11, _ in CROSSWALK_FORMS} == set(load_reference().crosswalk)


@pytest.mark.parametrize(("typed", "ndc11", "hcpcs"), CROSSWALK_FORMS, ids=[form for form, _, _ in CROSSWALK_FORMS])
def test_dashed_ten_digit_ndcs_of_the_crosswalk_are_found(typed: str, ndc11: str, hcpcs: str) -> None:
    findings = findings_for({"line.ndc": typed})
    assert "ndc-not-in-crosswalk" not in findings
    if hcpcs == "J7507":
        assert "wrong-code-for-product" not in findings
    else:
        assert findings["wrong-code-for-product"].evidence["ndc"] == ndc11


def test_an_undashed_ten_digit_ndc_is_ambiguous_and_shows_its_candidates() -> None:
    found = findings_for({"line.ndc": "0469061773"})["ndc-not-in-crosswalk"]
    assert found.evidence["ambiguous"] == "true"
    assert found.evidence["candidates"] == "00469061773,04690061773,04690617703"
    assert "ambiguous" in found.message and "00469061773" in found.message


def test_a_well_formed_unknown_ndc_is_not_called_ambiguous() -> None:
    found = findings_for({"line.ndc": "12345678901"})["ndc-not-in-crosswalk"]
    assert "ambiguous" not in found.evidence


def test_a_dashed_ten_digit_ndc_duplicates_its_eleven_digit_form() -> None:
    lines = [
        claim_line(1, ndc=PROGRAF_1MG, units=240, ndc_quantity=240),
        claim_line(2, ndc="0469-0617-73", units=240, ndc_quantity=240),
    ]
    found = findings_for({"claim.lines": lines}, line=2)["duplicate-line"]
    assert found.evidence["ndc"] == PROGRAF_1MG
    assert found.evidence["duplicate_of_lines"] == "1"


@pytest.mark.parametrize("typed", [PROGRAF_1MG, "00469-0617-73", "0469-0617-73"])
def test_the_non_preferred_list_compares_normalized_ndcs(typed: str) -> None:
    # FORMULARY-PLAN lists "00469-0617-73" (Prograf 1 mg).
    found = findings_for({"payer": FORMULARY_PLAN, "line.ndc": typed})
    assert found["non-preferred-product"].evidence["ndc"] == PROGRAF_1MG

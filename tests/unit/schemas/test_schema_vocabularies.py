"""The wire's lifecycle words are the domain's: each published vocabulary equals the one
its aggregate owns, and no schema module writes one of those words out again."""

from __future__ import annotations

import ast
from collections.abc import Collection
from pathlib import Path

import pytest
from pydantic import BaseModel

from dispatch.domain.driver import OFFER_OUTCOMES, RELEASE_REASONS, DriverStatus
from dispatch.domain.operators import DISPATCHING_ROLES, OPERATOR_ROLES
from dispatch.domain.ride import RIDE_ENDINGS, RideStatus
from schemas.commands import OperatorCancelRide
from schemas.events import OfferClosed, Released, RideCancelledByOperator, RideEnded
from schemas.views import DriverLocationView, RideView

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"

VOCABULARIES: list[tuple[type[BaseModel], str, Collection[str]]] = [
    (RideView, "status", [s.value for s in RideStatus]),
    (DriverLocationView, "status", [s.value for s in DriverStatus]),
    (OfferClosed, "outcome", OFFER_OUTCOMES),
    (Released, "reason", RELEASE_REASONS),
    (RideEnded, "outcome", {s.value for s in RIDE_ENDINGS.values()}),
    (RideCancelledByOperator, "operator_role", OPERATOR_ROLES),
    (OperatorCancelRide, "operator_role", DISPATCHING_ROLES),
]


@pytest.mark.parametrize(
    ("model", "field", "domain"),
    VOCABULARIES,
    ids=[f"{m.__name__}.{f}" for m, f, _ in VOCABULARIES],
)
def test_a_published_vocabulary_is_the_domains(
    model: type[BaseModel], field: str, domain: Collection[str]
) -> None:
    published = model.model_json_schema()["properties"][field]["enum"]
    if isinstance(domain, set):
        assert set(published) == domain and len(published) == len(domain)
    else:
        assert published == list(domain)  # in the domain's order, too


def test_no_schema_module_writes_a_lifecycle_word_out_again() -> None:
    words = {*RideStatus, *DriverStatus, *OFFER_OUTCOMES, *RELEASE_REASONS}
    copies = [
        f"{path.name}:{node.lineno} {node.value!r}"
        for path in sorted(SCHEMAS.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in words
    ]
    assert copies == [], "take these from dispatch.domain instead"

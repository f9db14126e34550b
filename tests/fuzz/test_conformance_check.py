"""The fuzz run's schema-conformance check can fail: a response that breaks the schema is caught (issue #14).

The same schema, call and checks as `make fuzz` (test_schemathesis.py) on one operation, the tier list: as served
it passes, and with one field of the answer broken (a string where the schema says integer, or a field left out)
the same validation raises. Runs in `make test` (no fuzz marker): it proves the fuzz's oracle, not the API.
"""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi.checks import JsonSchemaError

from sla.api.serializers import TierSerializer
from sla.services import seed_tiers
from tests.factories import UserFactory
from tests.fuzz.test_schemathesis import EXCLUDED_CHECKS, in_process_requests, schema  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def fuzz_stats():
    from collections import Counter

    return Counter()


def _validate_tier_list() -> None:
    seed_tiers()
    headers = {"Authorization": f"Token {Token.objects.create(user=UserFactory(username='reader')).key}"}
    case = schema["/api/tiers/"]["GET"].Case()
    response = case.call(headers=headers)
    assert response.status_code == 200
    case.validate_response(response, headers=headers, excluded_checks=EXCLUDED_CHECKS)


def test_the_tier_list_as_served_conforms():
    _validate_tier_list()


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda data: {**data, "priority": "first"}, id="wrong-type"),
        pytest.param(lambda data: {k: v for k, v in data.items() if k != "code"}, id="required-field-missing"),
    ],
)
def test_a_response_that_breaks_the_schema_fails_the_fuzz_check(monkeypatch, breakage):
    served = TierSerializer.to_representation
    monkeypatch.setattr(TierSerializer, "to_representation", lambda self, tier: breakage(served(self, tier)))

    with pytest.raises(FailureGroup) as caught:
        _validate_tier_list()

    assert [type(failure) for failure in caught.value.exceptions] == [JsonSchemaError]
    assert "Response violates schema" in str(caught.value.exceptions[0])

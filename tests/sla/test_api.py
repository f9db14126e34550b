"""The read API of SLA tiers and their service-credit schedules."""

from decimal import Decimal

import pytest
from django.urls import resolve, reverse
from rest_framework.test import APIClient

from energyarb import api_urls
from sla.choices import TierCode
from tests.factories import ServiceCreditRuleFactory, TierFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiers():
    premium = TierFactory(
        code=TierCode.PREMIUM,
        uptime_target_pct=Decimal("99.900"),
        price_multiplier=Decimal("3.50"),
        min_sites=2,
        requires_n_minus_1=True,
    )
    ServiceCreditRuleFactory(tier=premium, uptime_below_pct=Decimal("99.000"), credit_pct=Decimal("25.00"))
    ServiceCreditRuleFactory(tier=premium, uptime_below_pct=Decimal("99.900"), credit_pct=Decimal("10.00"))
    spot = TierFactory(
        code=TierCode.SPOT, uptime_target_pct=None, price_multiplier=Decimal("0.40"), is_preemptible=True
    )
    standard = TierFactory(code=TierCode.STANDARD)
    return premium, standard, spot


def test_anonymous_request_is_refused_with_401(anon_api):
    response = anon_api.get(reverse("tier-list"))

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_session_authenticated_user_can_read_tiers(customer, tiers):
    client = APIClient()
    client.force_login(customer.user)

    assert client.get(reverse("tier-list")).status_code == 200


def test_tiers_are_listed_in_priority_order_with_credit_rules(customer_api, tiers):
    response = customer_api.get(reverse("tier-list"))

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [row["code"] for row in body["results"]] == ["premium", "standard", "spot"]
    premium = body["results"][0]
    assert premium["uptime_target_pct"] == "99.900"
    assert premium["price_multiplier"] == "3.50"
    assert premium["requires_n_minus_1"] is True
    assert premium["credit_rules"] == [
        {"uptime_below_pct": "99.900", "credit_pct": "10.00"},
        {"uptime_below_pct": "99.000", "credit_pct": "25.00"},
    ]
    assert body["results"][2]["uptime_target_pct"] is None


def test_tier_detail_by_code(customer_api, tiers):
    response = customer_api.get(reverse("tier-detail", args=["spot"]))

    assert response.status_code == 200
    assert response.json()["is_preemptible"] is True


def test_unknown_tier_code_answers_404(customer_api, tiers):
    assert customer_api.get(reverse("tier-detail", args=["platinum"])).status_code == 404


def test_tiers_filter_by_preemptible(customer_api, tiers):
    response = customer_api.get(reverse("tier-list"), {"is_preemptible": "true"})

    assert [row["code"] for row in response.json()["results"]] == ["spot"]


def test_tiers_ordering_param_overrides_priority(customer_api, tiers):
    response = customer_api.get(reverse("tier-list"), {"ordering": "-price_multiplier"})

    assert [row["code"] for row in response.json()["results"]] == ["premium", "standard", "spot"]
    response = customer_api.get(reverse("tier-list"), {"ordering": "price_multiplier"})
    assert [row["code"] for row in response.json()["results"]] == ["spot", "standard", "premium"]


def test_tier_list_costs_a_constant_number_of_queries(customer_api, tiers, django_assert_num_queries):
    # token, count, tiers, credit rules
    with django_assert_num_queries(4):
        assert customer_api.get(reverse("tier-list")).status_code == 200


def test_the_quote_and_purchase_routes_are_among_the_first_patterns_the_api_tries():
    """Resolving a URL tries the patterns in order (a few µs each): the hot path's routes come before the ~70 of the
    other apps' routes."""
    names = [getattr(pattern, "name", None) for pattern in api_urls.urlpatterns]
    assert names[:2] == ["quote-list", "contract-list"]
    assert resolve("/api/sla/quotes/").url_name == "quote-list"
    assert resolve("/api/contracts/").url_name == "contract-list"


def test_trying_the_quote_and_purchase_routes_first_moves_no_url_to_another_view():
    """They match only `sla/quotes/` and `contracts/`, which none of the patterns after them matches: every other
    URL resolves as it would without them in front."""
    hot = api_urls.hot_patterns
    assert len(hot) == 2 and api_urls.urlpatterns[:2] == hot
    for pattern in hot:
        path = pattern.pattern.regex.pattern.strip("^$")
        assert pattern.resolve(path) is not None
        assert all(other.resolve(path) is None for other in api_urls.urlpatterns[2:]), path
        # the URLs next to theirs (detail, action, format suffix) reach the routes after them, as without them
        for neighbour in (path + "1/", path + "1/cancel/", path.rstrip("/") + ".json", path + "x"):
            first = next((other for other in api_urls.urlpatterns if other.resolve(neighbour)), None)
            assert first not in hot, neighbour
        assert resolve(f"/api/{path}1/").url_name == pattern.name.replace("-list", "-detail")

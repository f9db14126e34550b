"""The staff grid API: events created through the same rules (400 with field messages, nothing stored)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from grid.models import GridEvent
from tests.factories import T0

URL = "/api/grid/events/"


def _body(**changes):
    body = {
        "program": "ercot-dr",
        "sites": ["texas", "west"],
        "starts_at": (T0 + timedelta(hours=1)).isoformat(),
        "ends_at": (T0 + timedelta(hours=2)).isoformat(),
        "reduction_kw": "150",
    }
    body.update(changes)
    return body


def test_staff_posts_an_event_and_gets_it_with_baselines(ercot, staff_api):
    response = staff_api.post(URL, _body(), format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["status"] == "notified" and data["source"] == "api"
    assert {p["site"]: p["baseline_kw"] for p in data["performances"]} == {"texas": "350.000", "west": "350.000"}
    assert staff_api.get(URL).json()["count"] == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reduction_kw": "900"}, "reduction_kw"),
        ({"program": "nope"}, "program"),
        ({"sites": ["nowhere"]}, "sites"),
        ({"ends_at": (T0 + timedelta(hours=9)).isoformat()}, "ends_at"),
        ({"reduction_kw": "-1"}, "reduction_kw"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_event_answers_400_with_the_field_and_stores_nothing(ercot, staff_api, changes, field):
    response = staff_api.post(URL, _body(**changes), format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not GridEvent.objects.exists()


def test_customers_cannot_see_or_post_events(ercot, customer_api, anon_api):
    assert customer_api.get(URL).status_code == 403
    assert customer_api.post(URL, _body(), format="json").status_code == 403
    assert anon_api.get(URL).status_code == 401


def test_cancel_twice_answers_409(ercot, staff_api):
    event_id = staff_api.post(URL, _body(), format="json").json()["id"]
    assert staff_api.post(f"{URL}{event_id}/cancel/").json()["status"] == "cancelled"
    assert staff_api.post(f"{URL}{event_id}/cancel/").status_code == 409


def test_programs_and_enrollments_are_listed(ercot, staff_api):
    programs = staff_api.get("/api/grid/programs/").json()
    assert {"ercot-4cp", "ercot-ecrs", "ercot-ers10"} <= {p["code"] for p in programs["results"]}
    assert staff_api.get("/api/grid/enrollments/?program=ercot-dr").json()["count"] == 2


def test_the_loads_of_a_performance_are_documented_as_it_kw():
    """planned_kw and metered_kw hold IT kW (the plan's IT draw, the measured IT load), as the baseline does, not
    the site's load with cooling: the model, the admin and the API schema say so."""
    from drf_spectacular.generators import SchemaGenerator

    from grid.models import EventPerformance

    schema = SchemaGenerator().get_schema(request=None, public=True)
    documented = schema["components"]["schemas"]["EventPerformance"]["properties"]
    for name in ("planned_kw", "metered_kw"):
        help_text = str(EventPerformance._meta.get_field(name).help_text)
        assert help_text.startswith(("IT kW", "Measured IT kW")), help_text
        assert "site load" not in help_text
        assert documented[name]["description"] == help_text

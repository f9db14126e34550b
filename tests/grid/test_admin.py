"""The grid admin: events added through the service rules, moved by actions, performance shown."""

from __future__ import annotations

from datetime import timedelta

from grid.choices import EventStatus
from grid.models import GridEvent
from tests.factories import T0


def _form(ercot, **changes):
    data = {
        "program": ercot["dr"].pk,
        "event_sites": [ercot["texas"].pk],
        "starts_at_0": (T0 + timedelta(hours=1)).strftime("%Y-%m-%d"),
        "starts_at_1": (T0 + timedelta(hours=1)).strftime("%H:%M:%S"),
        "ends_at_0": (T0 + timedelta(hours=2)).strftime("%Y-%m-%d"),
        "ends_at_1": (T0 + timedelta(hours=2)).strftime("%H:%M:%S"),
        "reduction_mode": "by",
        "reduction_kw": "100",
    }
    data.update(changes)
    return data


def test_admin_adds_an_event_through_the_rules(ercot, admin_client):
    response = admin_client.post("/admin/grid/gridevent/add/", _form(ercot))
    assert response.status_code == 302, response.content[:2000]
    event = GridEvent.objects.get()
    assert event.source == "staff" and event.performances.get().baseline_kw == 350


def test_admin_refuses_a_reduction_over_the_commitment(ercot, admin_client):
    response = admin_client.post("/admin/grid/gridevent/add/", _form(ercot, reduction_kw="500"))
    assert response.status_code == 200
    assert b"committed 200" in response.content
    assert not GridEvent.objects.exists()


def test_admin_actions_move_events_and_pages_render(ercot, admin_client):
    admin_client.post("/admin/grid/gridevent/add/", _form(ercot))
    event = GridEvent.objects.get()
    admin_client.post("/admin/grid/gridevent/", {"action": "complete", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert event.status == EventStatus.NOTIFIED  # notified -> completed is refused
    admin_client.post("/admin/grid/gridevent/", {"action": "start", "_selected_action": [event.pk]})
    event.refresh_from_db()
    assert event.status == EventStatus.ACTIVE
    for url in (
        "/admin/grid/gridevent/",
        f"/admin/grid/gridevent/{event.pk}/change/",
        "/admin/grid/eventperformance/",
        "/admin/grid/gridprogram/",
        "/admin/grid/enrollment/",
        "/admin/grid/gridevent/?q=texas",
    ):
        assert admin_client.get(url).status_code == 200, url

"""The OpenADR 3 VEN against a fake VTN on 127.0.0.1 speaking the OpenADR 3.0 REST resources with OAuth."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from grid.choices import EventSource, EventStatus
from grid.clients.openadr import VtnClient, VtnError, VtnSettings
from grid.models import GridEvent
from grid.services import record_event_loads, transition_event
from grid.tasks import poll_openadr_vtn
from grid.ven import sync_with_vtn
from tests.factories import T0

from .fake_vtn import FakeVtn


@pytest.fixture
def vtn():
    with FakeVtn() as server:
        yield server


@pytest.fixture
def configured(settings, vtn):
    settings.ENERGYARB = {
        **settings.ENERGYARB,
        "OPENADR_VTN_URL": vtn.url,
        "OPENADR_CLIENT_ID": "ven-1",
        "OPENADR_CLIENT_SECRET": "s3cret",
        "OPENADR_VEN_NAME": "energyarb-test",
    }
    return VtnSettings.from_settings()


def test_ven_registers_polls_and_turns_vtn_events_into_grid_events(ercot, vtn, configured):
    program = vtn.add_program("ERCOT-DR")
    vtn.add_program("someone-elses-program")
    vtn.add_event(
        program, start=T0 + timedelta(minutes=30), duration="PT1H", payload_type="IMPORT_CAPACITY_LIMIT", kw=120
    )
    vtn.add_event(
        program,
        start=T0 + timedelta(hours=3),
        duration="PT30M",
        payload_type="DISPATCH_SETPOINT_RELATIVE",
        kw=-100,
        targets=["texas"],
    )
    client = VtnClient(configured)
    report = sync_with_vtn(client=client, now=T0)
    assert [v["venName"] for v in vtn.vens] == ["energyarb-test"] and report.ven_id == vtn.vens[0]["id"]
    assert report.unknown_programs == ["someone-elses-program"] and not report.refused
    to_level, by_amount = GridEvent.objects.order_by("starts_at")
    assert (to_level.reduction_mode, to_level.reduction_kw, to_level.source) == ("to", Decimal("120.000"), "openadr")
    assert to_level.starts_at == T0 + timedelta(minutes=30) and to_level.ends_at == T0 + timedelta(hours=1, minutes=30)
    assert sorted(to_level.performances.values_list("site__code", flat=True)) == ["texas", "west"]
    assert (by_amount.reduction_mode, by_amount.reduction_kw) == ("by", Decimal("100.000"))
    assert list(by_amount.performances.values_list("site__code", flat=True)) == ["texas"]

    again = sync_with_vtn(client=client, now=T0 + timedelta(minutes=1))  # nothing new: idempotent
    assert again.created == [] and GridEvent.objects.count() == 2
    assert len(vtn.vens) == 1  # registered once


def test_event_breaking_the_program_rules_is_refused_not_stored(ercot, vtn, configured):
    program = vtn.add_program("ercot-dr")
    event = vtn.add_event(
        program, start=T0 + timedelta(hours=1), duration="PT9H", payload_type="IMPORT_CAPACITY_LIMIT", kw=0
    )
    report = sync_with_vtn(client=VtnClient(configured), now=T0)
    assert "240 minutes" in report.refused[event["id"]] or "minutes" in report.refused[event["id"]]
    assert not GridEvent.objects.exists()


def test_withdrawn_event_is_cancelled_and_a_completed_one_is_reported(ercot, vtn, configured):
    program = vtn.add_program("ercot-dr")
    vtn.add_event(
        program, start=T0 + timedelta(minutes=10), duration="PT1H", payload_type="DISPATCH_SETPOINT_RELATIVE", kw=-150
    )
    withdrawn = vtn.add_event(
        program, start=T0 + timedelta(hours=5), duration="PT1H", payload_type="IMPORT_CAPACITY_LIMIT", kw=50
    )
    client = VtnClient(configured)
    sync_with_vtn(client=client, now=T0)
    done = GridEvent.objects.get(starts_at=T0 + timedelta(minutes=10))
    record_event_loads(
        event_id=done.pk, planned_kw={ercot["texas"].pk: Decimal("200"), ercot["west"].pk: Decimal("210")}
    )
    transition_event(event=done, to_status=EventStatus.ACTIVE)
    transition_event(event=done, to_status=EventStatus.COMPLETED)
    vtn.events.remove(withdrawn)
    report = sync_with_vtn(client=client, now=T0 + timedelta(hours=2))
    assert GridEvent.objects.get(external_id=withdrawn["id"]).status == EventStatus.CANCELLED
    assert report.reported == [done.pk]
    (posted,) = vtn.reports
    assert posted["programID"] == program["id"] and posted["eventID"] == done.external_id
    payloads = {r["resourceName"]: r["intervals"][0]["payloads"] for r in posted["resources"]}
    assert payloads["texas"] == [{"type": "BASELINE", "values": [350.0]}, {"type": "DEMAND", "values": [200.0]}]
    assert sync_with_vtn(client=client, now=T0 + timedelta(hours=3)).reported == []  # reported once


def test_wrong_credentials_are_a_vtn_error(ercot, vtn, configured):
    with pytest.raises(VtnError, match="token"):
        VtnClient(VtnSettings(vtn.url, "ven-1", "wrong", "x"))
    assert ("POST", "/auth/token") in vtn.requests


def test_every_resource_needs_the_bearer_token(vtn):
    import httpx

    assert httpx.get(f"{vtn.url}/programs").status_code == 401
    assert httpx.post(f"{vtn.url}/reports", json={"programID": "x", "eventID": "y"}).status_code == 401


def test_task_polls_the_configured_vtn_and_skips_without_one(ercot, vtn, configured, settings):
    program = vtn.add_program("ercot-dr")
    vtn.add_event(
        program, start=T0 + timedelta(minutes=10), duration="PT1H", payload_type="IMPORT_CAPACITY_LIMIT", kw=100
    )
    result = poll_openadr_vtn.apply().get()
    assert len(result["created"]) == 1 and GridEvent.objects.get().source == EventSource.OPENADR
    settings.ENERGYARB = {**settings.ENERGYARB, "OPENADR_VTN_URL": ""}
    assert poll_openadr_vtn.apply().get() == {"skipped": "no OPENADR_VTN_URL"}


def test_a_vtn_that_is_down_is_logged_not_raised(ercot, settings):
    settings.ENERGYARB = {**settings.ENERGYARB, "OPENADR_VTN_URL": "http://127.0.0.1:9", "OPENADR_CLIENT_ID": "x"}
    assert "error" in poll_openadr_vtn.apply().get()

"""Grid events: the rules every writer is bound by, the lifecycle, the re-plan hook and settlement."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from grid.choices import EventSource, EventStatus, ReductionMode
from grid.models import EventPerformance, GridEvent
from grid.services import (
    EventRequest,
    GridRefused,
    IllegalTransition,
    cancel_event,
    complete_due_events,
    create_grid_event,
    enroll_site,
    record_event_loads,
    start_due_events,
    transition_event,
)
from grid.signals import grid_event_changed
from tests.factories import T0, SiteFactory

pytestmark = pytest.mark.django_db(transaction=False)


def _request(ercot, **changes) -> EventRequest:
    values = {
        "program": ercot["dr"],
        "sites": (ercot["texas"], ercot["west"]),
        "starts_at": T0 + timedelta(hours=1),
        "ends_at": T0 + timedelta(hours=2),
        "reduction_kw": Decimal("150"),
    }
    values.update(changes)
    return EventRequest(**values)


def test_event_stores_a_baseline_per_site_from_the_running_load(ercot):
    event = create_grid_event(request=_request(ercot))
    assert event.status == EventStatus.NOTIFIED
    baselines = dict(event.performances.values_list("site__code", "baseline_kw"))
    assert baselines == {"texas": Decimal("350.000"), "west": Decimal("350.000")}
    assert event.cap_kw(Decimal("350")) == Decimal("200")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ends_at": T0 + timedelta(hours=6)}, "ends_at"),  # longer than the program's 240 minutes
        ({"ends_at": T0 + timedelta(hours=1, minutes=5)}, "ends_at"),  # shorter than 15 minutes
        ({"reduction_kw": Decimal("250")}, "reduction_kw"),  # more than the 200 kW committed
        ({"starts_at": T0 - timedelta(hours=1)}, "starts_at"),  # before it is notified
        ({"sites": ()}, "sites"),
    ],
)
def test_event_breaking_a_program_rule_is_refused_and_nothing_is_stored(ercot, changes, field):
    with pytest.raises(GridRefused) as refused:
        create_grid_event(request=_request(ercot, **changes))
    assert field in refused.value.errors
    assert not GridEvent.objects.exists() and not EventPerformance.objects.exists()


def test_site_not_enrolled_is_refused(ercot):
    outsider = SiteFactory(code="dallas", grid_region="ERCOT")
    with pytest.raises(GridRefused) as refused:
        create_grid_event(request=_request(ercot, sites=(outsider,)))
    assert "dallas is not enrolled" in refused.value.errors["sites"][0]


def test_monthly_event_cap_counts_calls_but_not_cancelled_ones(ercot):
    program = ercot["dr"]
    program.max_events_per_month = 2
    program.save()
    first = create_grid_event(request=_request(ercot))
    create_grid_event(
        request=_request(ercot, starts_at=T0 + timedelta(days=1), ends_at=T0 + timedelta(days=1, hours=1))
    )
    later = {"starts_at": T0 + timedelta(days=2), "ends_at": T0 + timedelta(days=2, hours=1)}
    with pytest.raises(GridRefused, match="2 events a month"):
        create_grid_event(request=_request(ercot, **later))
    cancel_event(event=first)
    assert create_grid_event(request=_request(ercot, **later)).pk


def test_lifecycle_moves_forward_only(ercot, frozen):
    event = create_grid_event(request=_request(ercot))
    with pytest.raises(IllegalTransition):
        transition_event(event=event, to_status=EventStatus.COMPLETED)
    frozen.move_to(T0 + timedelta(hours=1))
    assert start_due_events(now=T0 + timedelta(hours=1)) == 1
    assert start_due_events(now=T0 + timedelta(hours=1)) == 0  # idempotent
    event.refresh_from_db()
    assert event.status == EventStatus.ACTIVE
    frozen.move_to(T0 + timedelta(hours=2))
    assert complete_due_events(now=T0 + timedelta(hours=2)) == 1
    event.refresh_from_db()
    assert event.status == EventStatus.COMPLETED
    for status in EventStatus.values:
        with pytest.raises(IllegalTransition):
            transition_event(event=event, to_status=status)
    assert event.history.count() == 3


def test_completed_event_is_settled_on_planned_load(ercot):
    event = create_grid_event(request=_request(ercot))
    texas, west = ercot["texas"], ercot["west"]
    record_event_loads(event_id=event.pk, planned_kw={texas.pk: Decimal("200"), west.pk: Decimal("290")})
    transition_event(event=event, to_status=EventStatus.ACTIVE)
    transition_event(event=event, to_status=EventStatus.COMPLETED)
    rows = {p.site.code: p for p in event.performances.select_related("site")}
    # texas: 150 kW delivered over 1 h = 0.15 MWh x 200 USD; west: 60 kW delivered, 90 kW short x 300 USD/MWh.
    assert rows["texas"].delivered_reduction_kw == Decimal("150.000")
    assert rows["texas"].payment_usd == Decimal("30.00") and rows["texas"].penalty_usd == Decimal("0.00")
    assert rows["west"].payment_usd == Decimal("12.00") and rows["west"].penalty_usd == Decimal("27.00")


def test_reduction_to_a_level_caps_at_that_level(ercot):
    event = create_grid_event(request=_request(ercot, reduction_mode=ReductionMode.TO, reduction_kw=Decimal("100")))
    assert event.cap_kw(Decimal("350")) == Decimal("100")


def test_new_and_moved_events_are_announced_after_commit(ercot, django_capture_on_commit_callbacks):
    seen = []

    def receiver(sender, event_id, status, **kwargs):
        seen.append((event_id, status))

    grid_event_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            event = create_grid_event(request=_request(ercot, source=EventSource.API))
        with django_capture_on_commit_callbacks(execute=True):
            cancel_event(event=event)
    finally:
        grid_event_changed.disconnect(receiver)
    assert seen == [(event.pk, EventStatus.NOTIFIED), (event.pk, EventStatus.CANCELLED)]


def test_enrollment_outside_the_program_market_is_refused(ercot):
    oslo = SiteFactory(code="oslo", grid_region="NO1")
    with pytest.raises(GridRefused, match="not ERCOT"):
        enroll_site(
            site=oslo, program=ercot["dr"], committed_mw=Decimal("1"), starts_at=T0, ends_at=T0 + timedelta(days=1)
        )

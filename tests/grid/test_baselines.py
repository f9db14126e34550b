"""The high-5-of-10 customer baseline: the pure arithmetic on hand-made loads, and events that use it, reading fleet
telemetry where a site has it and the applied plans elsewhere; completed events settled on telemetry covering them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from fleet.models import SiteTelemetryRollup
from grid.baselines import BaselineUnavailable, high_5_of_10, public_holidays
from grid.choices import BaselineMethod
from grid.models import GridEvent
from grid.services import EventRequest, GridRefused, create_grid_event, record_event_loads, transition_event
from tests.factories import T0, AllocationFactory, OptimizationRunFactory

CT = ZoneInfo("America/Chicago")
STEP = timedelta(minutes=5)


def _window_loads(days: dict[date, float], start_local_hour: int = 15, hours: int = 1) -> dict[datetime, float]:
    loads = {}
    for day, kw in days.items():
        at = datetime(day.year, day.month, day.day, start_local_hour, tzinfo=CT).astimezone(UTC)
        for i in range(hours * 12):
            loads[at + i * STEP] = kw
    return loads


# Monday 2026-06-15, 15:00-16:00 Central. Weekdays back from it, with their window loads (kW):
DAYS = {
    date(2026, 6, 12): 300.0,
    date(2026, 6, 11): 120.0,
    date(2026, 6, 10): 9999.0,  # another event's day: not eligible
    date(2026, 6, 9): 8888.0,  # one interval missing: not eligible
    date(2026, 6, 8): 500.0,
    date(2026, 6, 5): 110.0,
    date(2026, 6, 4): 400.0,
    date(2026, 6, 3): 130.0,
    date(2026, 6, 2): 140.0,
    date(2026, 6, 1): 600.0,
    date(2026, 5, 29): 200.0,
    date(2026, 5, 28): 900.0,  # the 10th eligible day
    date(2026, 5, 27): 1000.0,  # the 11th: too old
    date(2026, 6, 13): 5000.0,  # Saturday
    date(2026, 6, 14): 5000.0,  # Sunday
    date(2026, 6, 7): 5000.0,  # Sunday
}
EVENT_START = datetime(2026, 6, 15, 15, tzinfo=CT).astimezone(UTC)


def _loads():
    loads = _window_loads(DAYS)
    del loads[datetime(2026, 6, 9, 15, 30, tzinfo=CT).astimezone(UTC)]
    return loads


def test_high_5_of_10_averages_the_five_highest_of_the_last_ten_like_days():
    baseline = high_5_of_10(
        _loads(), starts_at=EVENT_START, ends_at=EVENT_START + timedelta(hours=1), tz=CT, skip_days={date(2026, 6, 10)}
    )
    assert baseline.eligible == (
        date(2026, 6, 12),
        date(2026, 6, 11),
        date(2026, 6, 8),
        date(2026, 6, 5),
        date(2026, 6, 4),
        date(2026, 6, 3),
        date(2026, 6, 2),
        date(2026, 6, 1),
        date(2026, 5, 29),
        date(2026, 5, 28),
    )
    assert baseline.days == (date(2026, 5, 28), date(2026, 6, 1), date(2026, 6, 8), date(2026, 6, 4), date(2026, 6, 12))
    assert baseline.kw == pytest.approx((900 + 600 + 500 + 400 + 300) / 5)


def test_each_day_is_averaged_over_the_event_clock_times_only():
    loads = _loads()
    for day in DAYS:  # a spike an hour before the event window changes nothing
        loads[datetime(day.year, day.month, day.day, 14, tzinfo=CT).astimezone(UTC)] = 1e6
    first_half = datetime(2026, 6, 12, 15, tzinfo=CT).astimezone(UTC)
    for i in range(6):  # June 12 at 300 kW then 900 kW: 600 kW over the window, now the 2nd highest
        loads[first_half + (6 + i) * STEP] = 900.0
    baseline = high_5_of_10(
        loads, starts_at=EVENT_START, ends_at=EVENT_START + timedelta(hours=1), tz=CT, skip_days={date(2026, 6, 10)}
    )
    assert baseline.kw == pytest.approx((900 + 600 + 600 + 500 + 400) / 5)


def test_a_weekend_event_is_measured_against_weekend_days():
    saturday = datetime(2026, 6, 20, 15, tzinfo=CT).astimezone(UTC)
    # Weekend w weeks back at 100 + 10 w kW (weekdays keep DAYS, up to 9,999 kW: ignored).
    weekend = {date(2026, 6, 14) - timedelta(days=7 * w + d): 100.0 + 10 * w for w in range(6) for d in (0, 1)}
    baseline = high_5_of_10(
        _window_loads({**DAYS, **weekend}), starts_at=saturday, ends_at=saturday + timedelta(hours=1), tz=CT
    )
    assert all(day.weekday() >= 5 for day in baseline.eligible) and len(baseline.eligible) == 10
    # The last 10 weekend days are weeks 0-4 (100-140 kW); week 5 is too old: the 5 highest are 140, 140, 130,
    # 130, 120.
    assert baseline.kw == pytest.approx((140 + 140 + 130 + 130 + 120) / 5)


def test_a_public_holiday_is_a_day_off_like_a_weekend_day():
    """June 4 (400 kW) made a holiday: a weekday event no longer counts it (May 27, 1,000 kW, becomes the 10th like
    day), and an event on a holiday is measured against weekend days and holidays."""
    loads = _loads()
    baseline = high_5_of_10(
        loads,
        starts_at=EVENT_START,
        ends_at=EVENT_START + timedelta(hours=1),
        tz=CT,
        skip_days={date(2026, 6, 10)},
        holidays_off={date(2026, 6, 4)},
    )
    assert date(2026, 6, 4) not in baseline.eligible and baseline.eligible[-1] == date(2026, 5, 27)
    assert baseline.kw == pytest.approx((1000 + 900 + 600 + 500 + 300) / 5)

    holiday = datetime(2026, 6, 12, 15, tzinfo=CT).astimezone(UTC)  # a Friday made a holiday
    weekend = {date(2026, 6, 7) - timedelta(days=7 * w + d): 100.0 + 10 * w for w in range(6) for d in (0, 1)}
    baseline = high_5_of_10(
        _window_loads({**DAYS, **weekend}),
        starts_at=holiday,
        ends_at=holiday + timedelta(hours=1),
        tz=CT,
        holidays_off={date(2026, 6, 12), date(2026, 6, 4)},
    )
    assert baseline.eligible[:3] == (date(2026, 6, 7), date(2026, 6, 6), date(2026, 6, 4))
    assert all(day.weekday() >= 5 or day == date(2026, 6, 4) for day in baseline.eligible)


def test_public_holidays_are_the_countrys():
    assert public_holidays("US", date(2026, 5, 1), date(2026, 7, 31)) == {
        date(2026, 5, 25),  # Memorial Day
        date(2026, 6, 19),  # Juneteenth
        date(2026, 7, 3),  # Independence Day (a Saturday) observed on the Friday
        date(2026, 7, 4),
    }
    assert date(2026, 5, 25) in public_holidays("no", date(2026, 5, 25), date(2026, 5, 25))  # Whit Monday
    assert public_holidays("US", date(2026, 12, 20), date(2027, 1, 5)) == {date(2026, 12, 25), date(2027, 1, 1)}
    assert public_holidays("XX", date(2026, 1, 1), date(2026, 12, 31)) == frozenset()  # no calendar: none


def test_too_little_history_is_refused():
    few = {day: kw for day, kw in DAYS.items() if day >= date(2026, 6, 11)}  # two weekdays and a weekend
    with pytest.raises(BaselineUnavailable, match="2 like days"):
        high_5_of_10(_window_loads(few), starts_at=EVENT_START, ends_at=EVENT_START + timedelta(hours=1), tz=CT)


# Through the event service: Tuesday 2026-06-02, 20:00-21:00 UTC (15:00 Central), notified at T0.
STARTS = datetime(2026, 6, 2, 20, tzinfo=UTC)


@pytest.fixture
def high_5(ercot):
    ercot["dr"].baseline_method = BaselineMethod.HIGH_5_OF_10
    ercot["dr"].save()
    return ercot


def _request(ercot) -> EventRequest:
    return EventRequest(
        program=ercot["dr"],
        sites=(ercot["texas"],),
        starts_at=STARTS,
        ends_at=STARTS + timedelta(hours=1),
        reduction_kw=Decimal("100"),
    )


def _applied_run(site, finished_at: datetime, it_kw: str, *, applied: bool = True) -> None:
    run = OptimizationRunFactory(started_at=finished_at - timedelta(seconds=1), is_applied=applied)
    AllocationFactory(run=run, site=site, it_power_kw=Decimal(it_kw), facility_power_kw=Decimal(it_kw) * 2)


def _measured(site, day: date, kw: float, buckets: range = range(12)) -> None:
    start = datetime(day.year, day.month, day.day, 20, tzinfo=UTC)
    SiteTelemetryRollup.objects.bulk_create(
        SiteTelemetryRollup(site=site, bucket_start=start + i * STEP, samples=2, device_power_kw=kw) for i in buckets
    )


def test_an_event_of_a_high_5_of_10_program_reads_telemetry_then_applied_plans(high_5):
    texas = high_5["texas"]
    _applied_run(texas, T0 - timedelta(days=40), "200")  # in force until May 22
    _applied_run(texas, T0 - timedelta(days=10), "300")  # from May 22 on
    _applied_run(texas, T0 - timedelta(days=5), "10000", applied=False)  # rejected: never in force
    for day in (date(2026, 6, 1), date(2026, 5, 29), date(2026, 5, 28)):
        _measured(texas, day, 600.0)
    _measured(texas, date(2026, 5, 27), 600.0, range(6))  # half measured (600), half planned (300): 450
    # Last 10 weekdays before June 2: Jun 1, May 29, 28 (600), 27 (450), 26, 25, 22 (300), 21, 20, 19 (200).
    event = create_grid_event(request=_request(high_5))
    assert event.performances.get().baseline_kw == Decimal("510.000")  # (600 x 3 + 450 + 300) / 5


def test_the_public_holidays_of_the_sites_country_are_not_like_days(high_5):
    """Memorial Day (Monday May 25) drew 5,000 kW; every other day the applied plan's 200 kW. A Tuesday event in the
    US leaves the holiday out of its like days."""
    texas = high_5["texas"]
    texas.country = "US"
    texas.save(update_fields=["country"])
    _applied_run(texas, T0 - timedelta(days=40), "200")
    _measured(texas, date(2026, 5, 25), 5000.0)
    event = create_grid_event(request=_request(high_5))
    assert event.performances.get().baseline_kw == Decimal("200.000")


def test_a_site_without_load_history_is_refused_and_nothing_is_stored(high_5, staff_api):
    with pytest.raises(GridRefused) as refused:
        create_grid_event(request=_request(high_5))
    assert "texas: 0 like days of load history" in refused.value.errors["sites"][0]
    body = {
        "program": "ercot-dr",
        "sites": ["texas"],
        "starts_at": STARTS.isoformat(),
        "ends_at": (STARTS + timedelta(hours=1)).isoformat(),
        "reduction_kw": "100",
    }
    response = staff_api.post("/api/grid/events/", body, format="json")
    assert response.status_code == 400 and "sites" in response.json()
    assert not GridEvent.objects.exists()


def _event_settled_with_telemetry(ercot, buckets: range):
    starts = T0 + timedelta(hours=1)
    event = create_grid_event(
        request=EventRequest(
            program=ercot["dr"],
            sites=(ercot["texas"],),
            starts_at=starts,
            ends_at=starts + timedelta(hours=1),
            reduction_kw=Decimal("150"),
        )
    )
    record_event_loads(event_id=event.pk, planned_kw={ercot["texas"].pk: Decimal("200")})
    SiteTelemetryRollup.objects.bulk_create(
        SiteTelemetryRollup(site=ercot["texas"], bucket_start=starts + i * STEP, samples=1, device_power_kw=260.0)
        for i in buckets
    )
    transition_event(event=event, to_status="active")
    transition_event(event=event, to_status="completed")
    return event.performances.get()


def test_a_completed_event_is_settled_on_telemetry_that_covers_it(ercot):
    # Baseline 350 kW (load at notice), cap 200 kW. The plan said 200 kW, the devices drew 260 kW all hour: 90 kW
    # delivered (18 USD at 200 USD/MWh), 60 kW short (18 USD at 300 USD/MWh), not the plan's clean 30 USD.
    performance = _event_settled_with_telemetry(ercot, range(12))
    assert performance.metered_kw == Decimal("260.000")
    assert performance.delivered_reduction_kw == Decimal("90.000")
    assert (performance.payment_usd, performance.penalty_usd) == (Decimal("18.00"), Decimal("18.00"))


def test_telemetry_with_a_gap_leaves_the_event_on_its_planned_load(ercot):
    performance = _event_settled_with_telemetry(ercot, range(11))  # the last 5 minutes unmeasured
    assert performance.metered_kw is None
    assert (performance.payment_usd, performance.penalty_usd) == (Decimal("30.00"), Decimal("0.00"))

"""Time zones across DST changes, for a site in Europe (Berlin) and one in the Americas (Chicago).

Stored times are UTC; local time matters in three places: the simulated price shape follows the local clock,
local times shown to people carry the right offset, and contract windows count elapsed hours, not wall-clock
hours (a 24-hour contract over the spring-forward night ends at 01:00 local the next day).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import time_machine

from sites.simulation.prices import derive_site_price_profile, simulate_energy_price_series
from sites.simulation.weather import local_calendar, utc_seconds
from tests.factories import SiteFactory

# (zone, local date of the spring-forward change, the UTC instant of the change, offsets before and after)
SPRING = {
    "Europe/Berlin": (date(2026, 3, 29), datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "+01:00", "+02:00"),
    "America/Chicago": (date(2026, 3, 8), datetime(2026, 3, 8, 8, 0, tzinfo=UTC), "-06:00", "-05:00"),
}
FALL = {
    "Europe/Berlin": (date(2026, 10, 25), datetime(2026, 10, 25, 1, 0, tzinfo=UTC), "+02:00", "+01:00"),
    "America/Chicago": (date(2026, 11, 1), datetime(2026, 11, 1, 7, 0, tzinfo=UTC), "-05:00", "-06:00"),
}
ZONES = pytest.mark.parametrize("zone", ["Europe/Berlin", "America/Chicago"])


def _local_days(zone: str, first: date, days: int) -> tuple[np.ndarray, list[date]]:
    """5-minute UTC timestamps covering `days` local days from `first`, and the local date of each."""
    tz = ZoneInfo(zone)
    start = datetime.combine(first, datetime.min.time(), tz).astimezone(UTC)
    end = datetime.combine(first + timedelta(days=days), datetime.min.time(), tz).astimezone(UTC)
    periods = int((end - start).total_seconds() // 300)
    utc_s = utc_seconds(start, periods)
    local_dates = [datetime.fromtimestamp(int(s), tz).date() for s in utc_s]
    return utc_s, local_dates


@ZONES
@pytest.mark.parametrize("changes", [SPRING, FALL], ids=["spring", "fall"])
def test_a_dst_day_has_23_or_25_local_hours_of_intervals(zone, changes):
    change_day = changes[zone][0]
    utc_s, local_dates = _local_days(zone, change_day - timedelta(days=1), 3)
    per_day = defaultdict(int)
    for day in local_dates:
        per_day[day] += 1
    expected = 23 * 12 if changes is SPRING else 25 * 12
    assert per_day[change_day] == expected
    assert per_day[change_day - timedelta(days=1)] == per_day[change_day + timedelta(days=1)] == 24 * 12
    hours = local_calendar(utc_s, zone).hour
    on_change_day = hours[[day == change_day for day in local_dates]]
    counts = np.bincount(np.floor(on_change_day).astype(int), minlength=24)
    if changes is SPRING:
        assert counts[2] == 0 and set(np.delete(counts, 2)) == {12}  # 02:00-02:59 does not exist
    else:
        repeated = 2 if zone == "Europe/Berlin" else 1  # 02:xx in Berlin, 01:xx in Chicago happen twice
        assert counts[repeated] == 24 and set(np.delete(counts, repeated)) == {12}


@ZONES
def test_the_simulated_price_shape_follows_the_local_clock_across_the_change(zone):
    """Noise off, the daily peak sits at the same local hour on both sides of the change, so it moves by one
    hour in UTC."""
    profile = dataclasses.replace(
        derive_site_price_profile(code="dst", time_zone=zone, latitude=45.0, renewable_share=0.0),
        volatility=0.0,
        spike_rate_per_year=0.0,
        negative_propensity=0.0,
        renewable_share=0.0,
    )
    change_day = SPRING[zone][0]
    before, after = change_day - timedelta(days=2), change_day + timedelta(days=2)  # same weekday pattern not needed
    tz = ZoneInfo(zone)
    peaks_local, peaks_utc = [], []
    for day in (before, after):
        start = datetime.combine(day, datetime.min.time(), tz).astimezone(UTC)
        prices = simulate_energy_price_series(profile, start, 24 * 12, seed=7).usd_per_mwh
        peak = start + timedelta(minutes=5 * int(np.argmax(prices)))
        peaks_local.append(peak.astimezone(tz).strftime("%H:%M"))
        peaks_utc.append(peak.hour * 60 + peak.minute)
    assert peaks_local[0] == peaks_local[1]
    assert peaks_utc[0] - peaks_utc[1] == 60  # summer time: the same local moment is an hour earlier in UTC


@pytest.mark.django_db
@ZONES
@pytest.mark.parametrize("changes", [SPRING, FALL], ids=["spring", "fall"])
def test_local_times_shown_carry_the_offset_of_the_moment(zone, changes, staff_api):
    site = SiteFactory(code="dst_site", time_zone=zone)
    _, change_at, offset_before, offset_after = changes[zone]
    for moment, offset in ((change_at - timedelta(minutes=1), offset_before), (change_at, offset_after)):
        with time_machine.travel(moment, tick=False):
            original = staff_api.get("/api/sites/status").json()["sites"]
            dashboard = staff_api.get("/api/dashboard/").json()["sites"]
        [row] = [row for row in original if row["site_id"] == site.code]
        local = datetime.fromisoformat(row["local_time"])
        assert row["local_time"].endswith(offset)
        assert local == moment.replace(second=0)  # the same instant, shown in local time
        [dash] = [row for row in dashboard if row["id"] == site.pk]
        assert dash["utc_offset"] == offset
        assert dash["local_time"] == moment.astimezone(ZoneInfo(zone)).strftime("%H:%M")


@pytest.mark.django_db
def test_a_24_hour_contract_over_the_spring_change_lasts_24_elapsed_hours(customer_api):
    """Chicago: 00:00 CST on the change day + 24 h = 01:00 CDT the next day; 24 hours are priced, not 23."""
    from tests.sla.conftest import build_fleet

    build_fleet()
    tz = ZoneInfo("America/Chicago")
    start_local = datetime(2026, 3, 8, 0, 0, tzinfo=tz)
    with time_machine.travel(datetime(2026, 3, 7, 12, 0, tzinfo=UTC), tick=False):
        body = {
            "tier": "standard",
            "capacity_kw": "100",
            "duration_hours": "24",
            "starts_at": start_local.isoformat(),
        }
        response = customer_api.post("/api/sla/quotes/", body, format="json")
    assert response.status_code == 201, response.content
    quote = response.json()
    starts = datetime.fromisoformat(quote["starts_at"].replace("Z", "+00:00"))
    ends = datetime.fromisoformat(quote["ends_at"].replace("Z", "+00:00"))
    assert starts == start_local
    assert ends - starts == timedelta(hours=24)
    assert ends.astimezone(tz).strftime("%H:%M %z") == "01:00 -0500"
    expected_total = (Decimal(quote["price_usd_per_kwh"]) * Decimal("100") * 24).quantize(Decimal("0.01"))
    assert Decimal(quote["total_usd"]) == expected_total

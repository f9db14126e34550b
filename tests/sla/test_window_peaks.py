"""The peaks admission reads from the database agree with the sweep of `sla.capacity.peak_kw` over the bookings."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

import pytest

from sla.capacity import WindowLoad, peak_kw
from sla.choices import ContractStatus
from sla.services import candidate_sites, load_bookings
from sla.services.admission import load_window_peaks
from tests.factories import T0, ContractFactory, PlacementFactory

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)


def both_reads(start, end) -> dict[str, tuple[WindowLoad, Decimal, Decimal]]:
    """Per site: the load read by SQL, and the firm and total peaks swept in Python over the bookings."""
    swept = candidate_sites(lock=False)
    load_bookings(swept, start=start, end=end)
    summed = {room.code: room for room in candidate_sites(lock=False)}
    load_window_peaks(summed.values(), start=start, end=end)
    return {
        room.code: (
            summed[room.code].load,
            peak_kw(room.bookings, start, end, firm_only=True),
            peak_kw(room.bookings, start, end),
        )
        for room in swept
    }


def test_touching_windows_never_count_twice_and_spot_counts_only_in_the_total(fleet):
    def book(tier, kw, start, hours=None, site=fleet.oslo, status=ContractStatus.ACTIVE):
        contract = ContractFactory(
            tier=tier, status=status, starts_at=T0, ends_at=T0 + 100 * H, capacity_kw=Decimal(kw)
        )
        end = None if hours is None else start + hours * H
        PlacementFactory(contract=contract, site=site, capacity_kw=Decimal(kw), valid_from=start, valid_to=end)

    book(fleet.standard, "100", T0, 2)
    book(fleet.standard, "250", T0 + 2 * H, 2)  # starts exactly when the first ends: 250, not 350
    book(fleet.spot, "40.5", T0 + H, 2)
    book(fleet.premium, "7", T0 - 10 * H)  # open-ended, begun before the window
    book(fleet.flexible, "900", T0, 4, status=ContractStatus.CANCELLED)  # holds nothing any more
    book(fleet.standard, "30", T0 + 5 * H, 1)  # after the window
    book(fleet.standard, "11", T0, 4, site=fleet.dublin)

    reads = both_reads(T0, T0 + 4 * H)

    load, firm, total = reads["oslo"]
    assert (load.firm_kw, load.total_kw) == (firm, total) == (Decimal("257"), Decimal("297.5"))
    assert (reads["dublin"][0].firm_kw, reads["dublin"][0].total_kw) == (Decimal("11"), Decimal("11"))
    assert (reads["texas"][0].firm_kw, reads["texas"][0].total_kw) == (0, 0)
    assert reads["texas"][0].start == T0 and reads["texas"][0].end == T0 + 4 * H


def random_book(rng, count, *, sites, tiers, statuses, half_hours):
    """`count` contracts of random tier and status, each with one placement of random kW on a random site, from
    T0 + a half-hours after T0 for b half-hours (a, b drawn from the two ranges of `half_hours`), one in ten
    open-ended."""
    (first, last), (shortest, longest) = half_hours
    for _ in range(count):
        contract = ContractFactory(
            tier=rng.choice(tiers), status=rng.choice(statuses), starts_at=T0, ends_at=T0 + 100 * H
        )
        start = T0 + rng.randint(first, last) * H / 2
        end = None if rng.random() < 0.1 else start + rng.randint(shortest, longest) * H / 2
        kw = Decimal(rng.randint(1, 200_000)) / 1000
        PlacementFactory(contract=contract, site=rng.choice(sites), capacity_kw=kw, valid_from=start, valid_to=end)


def test_random_books_read_the_same_peaks_as_the_sweep(fleet):
    random_book(
        random.Random(7),
        150,
        sites=[fleet.oslo, fleet.dublin, fleet.texas],
        tiers=[fleet.premium, fleet.standard, fleet.flexible, fleet.spot],
        statuses=[ContractStatus.ACTIVE, ContractStatus.REQUESTED, ContractStatus.COMPLETED],
        half_hours=((-8, 40), (1, 12)),
    )

    for start, hours in [(T0, 2), (T0 + 3 * H, 5), (T0 - 5 * H, 30), (T0 + 7 * H / 2, 1)]:
        for code, (load, firm, total) in both_reads(start, start + hours * H).items():
            assert (load.firm_kw, load.total_kw) == (firm, total), (code, start, hours)


def test_a_load_read_for_one_window_is_not_used_for_another(fleet):
    [room, *_] = candidate_sites(lock=False)
    load_window_peaks([room], start=T0, end=T0 + H)

    with pytest.raises(ValueError, match="another window"):
        room.peak_kw(T0, T0 + 2 * H)


def test_the_peaks_read_on_some_sites_are_those_sites_peaks_read_on_the_whole_fleet(fleet):
    """A purchase reads the peaks of its plan's sites only (`only`): the sweep is per site, so each site's peaks
    are the same as in the fleet-wide read, for any set of one to three sites."""
    sites = [fleet.oslo, fleet.dublin, fleet.texas]
    random_book(
        random.Random(11),
        90,
        sites=sites,
        tiers=[fleet.premium, fleet.standard, fleet.spot],
        statuses=[ContractStatus.ACTIVE, ContractStatus.REQUESTED, ContractStatus.CANCELLED],
        half_hours=((-4, 20), (1, 8)),
    )

    for start, hours in [(T0, 2), (T0 + 3 * H, 5), (T0 - H, 12)]:
        end = start + hours * H
        fleet_wide = {room.site_id: room for room in candidate_sites(lock=False)}
        load_window_peaks(fleet_wide.values(), start=start, end=end)
        for chosen in ([fleet.oslo], [fleet.texas, fleet.dublin], sites):
            rooms = [room for room in candidate_sites(lock=False) if room.site_id in {s.pk for s in chosen}]
            load_window_peaks(rooms, start=start, end=end, only=[s.pk for s in chosen])
            assert [room.load for room in rooms] == [fleet_wide[room.site_id].load for room in rooms]
            assert any(room.load.total_kw > 0 for room in rooms)


def test_peaks_read_on_some_sites_refuse_a_room_of_another_site(fleet):
    rooms = candidate_sites(lock=False)
    with pytest.raises(ValueError, match="every room"):
        load_window_peaks(rooms, start=T0, end=T0 + H, only=[fleet.oslo.pk])

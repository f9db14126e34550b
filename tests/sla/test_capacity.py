"""The pure arithmetic of SLA capacity: peaks over a window, placement plans, Spot displacement, prices, uptime."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from sla.capacity import (
    DEFAULT_INFERENCE_PRICE_USD_PER_MTOK,
    Booking,
    NoPlacement,
    SiteRoom,
    hall_limit_kw,
    peak_kw,
    plan_placement,
    price_for,
    spot_to_displace,
    uptime_pct,
)
from tests.factories import T0

H = timedelta(hours=1)


def site(site_id: int, limit: str, *, cost: str = "1.0", region: str = "europe", bookings=()) -> SiteRoom:
    return SiteRoom(
        site_id=site_id,
        code=f"s{site_id}",
        name=f"Site {site_id}",
        market_region=region,
        energy_cost_multiplier=Decimal(cost),
        limit_kw=Decimal(limit),
        tokens_per_s_per_kw=Decimal("1200"),
        bookings=list(bookings),
    )


def booking(kw: str, start_h: int, end_h: int | None, *, spot: bool = False, contract: int = 1, site_id: int = 1):
    return Booking(
        site_id=site_id,
        capacity_kw=Decimal(kw),
        starts_at=T0 + start_h * H,
        ends_at=None if end_h is None else T0 + end_h * H,
        preemptible=spot,
        placement_id=contract,
        contract_id=contract,
    )


def plan(sites, kw, *, min_sites=1, n_minus_1=False, spot=False, region="", hours=(0, 2)):
    return plan_placement(
        sites,
        capacity_kw=Decimal(kw),
        start=T0 + hours[0] * H,
        end=T0 + hours[1] * H,
        min_sites=min_sites,
        n_minus_1=n_minus_1,
        preemptible=spot,
        region_preference=region,
    )


def test_peak_counts_only_overlapping_moments_and_half_open_ends():
    bookings = [booking("100", 0, 2), booking("50", 2, 4), booking("30", 1, 3), booking("999", 5, None)]

    assert peak_kw(bookings, T0, T0 + 4 * H) == Decimal("130")
    assert peak_kw(bookings, T0 + 2 * H, T0 + 5 * H) == Decimal("80")  # 100 ended exactly at 2 h
    assert peak_kw(bookings, T0 + 4 * H, T0 + 6 * H) == Decimal("999")  # open-ended booking


def test_peak_firm_only_leaves_spot_out():
    bookings = [booking("100", 0, 2), booking("300", 0, 2, spot=True)]

    assert peak_kw(bookings, T0, T0 + H) == Decimal("400")
    assert peak_kw(bookings, T0, T0 + H, firm_only=True) == Decimal("100")


def test_standard_goes_whole_to_the_cheapest_site_with_room():
    sites = [site(1, "100", cost="0.5"), site(2, "500", cost="0.9"), site(3, "500", cost="0.7")]

    shares = plan(sites, "200")

    assert [(s.site.site_id, s.capacity_kw) for s in shares] == [(3, Decimal("200"))]


def test_region_preference_comes_before_price():
    sites = [site(1, "500", cost="0.5", region="europe"), site(2, "500", cost="1.4", region="apac")]

    assert plan(sites, "100", region="apac")[0].site.site_id == 2
    assert plan(sites, "100")[0].site.site_id == 1


def test_single_site_tier_splits_when_no_site_can_take_it_whole():
    sites = [site(1, "300", cost="0.5"), site(2, "200", cost="0.9")]

    shares = plan(sites, "450")

    assert sorted((s.site.site_id, s.capacity_kw) for s in shares) == [(1, Decimal("300")), (2, Decimal("150"))]


def test_premium_n_minus_1_on_two_sites_at_full_capacity_each():
    sites = [site(1, "800", cost="0.5"), site(2, "500", cost="0.9"), site(3, "300", cost="0.8")]

    shares = plan(sites, "250", min_sites=2, n_minus_1=True)

    assert [(s.site.site_id, s.capacity_kw) for s in shares] == [(1, Decimal("250")), (3, Decimal("250"))]


def test_premium_spreads_over_three_sites_at_half_when_two_cannot_carry_it_each():
    sites = [site(1, "800"), site(2, "300"), site(3, "300")]

    shares = plan(sites, "500", min_sites=2, n_minus_1=True)

    assert sorted(s.capacity_kw for s in shares) == [Decimal("250")] * 3
    total = sum(s.capacity_kw for s in shares)
    assert all(total - s.capacity_kw >= Decimal("500") for s in shares)  # lose any one site, still served


def test_n_minus_1_share_is_rounded_up_so_the_guarantee_holds():
    shares = plan([site(n, "40") for n in range(1, 6)], "100", min_sites=2, n_minus_1=True)

    total = sum(s.capacity_kw for s in shares)
    assert [s.capacity_kw for s in shares] == [Decimal("33.334")] * 4  # 100 / 3, rounded up to the watt
    assert all(total - s.capacity_kw >= Decimal("100") for s in shares)


def test_refusal_names_the_rule_and_the_room_left():
    sites = [site(1, "800", bookings=[booking("700", 0, 4)]), site(2, "50")]

    with pytest.raises(NoPlacement) as refused:
        plan(sites, "200", min_sites=2, n_minus_1=True)

    message = str(refused.value)
    assert "N-1 needs at least 2 sites each able to carry 200.000 kW" in message
    assert "the most any online site can take for the whole window is 100.000 kW" in message


def test_room_is_the_peak_over_the_whole_window_not_the_start():
    sites = [site(1, "100", bookings=[booking("60", 1, 2)])]  # free at the start, busy an hour later

    with pytest.raises(NoPlacement):
        plan(sites, "50", hours=(0, 3))
    assert plan(sites, "50", hours=(2, 3))[0].capacity_kw == Decimal("50")


def test_spot_does_not_block_firm_tiers_but_blocks_spot():
    sites = [site(1, "100", bookings=[booking("100", 0, 4, spot=True)])]

    assert plan(sites, "100")[0].capacity_kw == Decimal("100")
    with pytest.raises(NoPlacement):
        plan(sites, "1", spot=True)


def test_spot_displacement_is_newest_first_and_only_where_needed():
    room = site(
        1,
        "100",
        bookings=[
            booking("40", 0, 4, spot=True, contract=1),
            booking("40", 0, 4, spot=True, contract=2),
            booking("90", 6, 8, spot=True, contract=3),  # outside the window: never displaced
            booking("20", 0, 4, contract=4),
        ],
    )

    displaced = spot_to_displace(room, T0, T0 + 4 * H, capacity_kw=Decimal("40"))

    assert [b.contract_id for b in displaced] == [2]
    assert spot_to_displace(room, T0, T0 + 4 * H, capacity_kw=Decimal("80")) == [room.bookings[1], room.bookings[0]]


def test_price_is_the_rate_card_times_tier_times_utilization():
    plan_ = [type("S", (), {"site": site(1, "1000"), "capacity_kw": Decimal("250")})()]

    price = price_for(
        plan_,
        capacity_kw=Decimal("250"),
        duration_hours=Decimal("4"),
        tier_multiplier=Decimal("2.00"),
        token_price_usd_per_mtok=Decimal("3.0000"),
        start=T0,
        end=T0 + 4 * H,
        preemptible=False,
    )

    # Reference only: 3 USD/Mtok x 1,200 tok/s/kW x 3,600 s / 1e6 = 12.96 USD/kWh when every token sells.
    assert price.base_value_usd_per_kwh == Decimal("12.960000")
    assert price.utilization_pct == Decimal("25.00")
    assert price.utilization_factor == Decimal("1.1250")
    # Charged: 415 USD/kW-month x 2.00 x 1.125 = 933.75 USD/kW-month, / 730 h
    assert price.base_rate_usd_per_kw_month == Decimal("415")
    assert price.price_usd_per_kw_month == Decimal("933.75")
    assert price.price_usd_per_kwh == Decimal("1.279110")
    assert price.total_usd == Decimal("1279.11")  # x 250 kW x 4 h
    assert price.token_price_source == "market"


def test_price_does_not_follow_the_token_price():
    plan_ = [type("S", (), {"site": site(1, "1000"), "capacity_kw": Decimal("250")})()]
    prices = [
        price_for(
            plan_,
            capacity_kw=Decimal("250"),
            duration_hours=Decimal("4"),
            tier_multiplier=Decimal("3.50"),
            token_price_usd_per_mtok=Decimal(token),
            start=T0,
            end=T0 + 4 * H,
            preemptible=False,
            base_rate_usd_per_kw_month=Decimal("500"),
        )
        for token in ("0.50", "2.00")
    ]
    assert prices[0].price_usd_per_kwh == prices[1].price_usd_per_kwh
    assert prices[0].price_usd_per_kw_month == Decimal("1968.75")  # 500 x 3.5 x 1.125


def test_price_falls_back_to_the_default_token_price():
    plan_ = [type("S", (), {"site": site(1, "1000"), "capacity_kw": Decimal("10")})()]

    price = price_for(
        plan_,
        capacity_kw=Decimal("10"),
        duration_hours=Decimal("1"),
        tier_multiplier=Decimal("1"),
        token_price_usd_per_mtok=None,
        start=T0,
        end=T0 + H,
        preemptible=False,
    )

    assert price.token_price_source == "default"
    assert price.token_price_usd_per_mtok == DEFAULT_INFERENCE_PRICE_USD_PER_MTOK


@pytest.mark.parametrize(
    ("delivered", "committed", "expected"),
    [
        ("999", "1000", Decimal("99.900")),
        ("99899", "100000", Decimal("99.899")),  # never rounded up into a better credit step
        ("2", "3", Decimal("66.666")),
        ("0", "10", Decimal("0.000")),
    ],
)
def test_uptime_rounds_down(delivered, committed, expected):
    assert uptime_pct(delivered_kw_minutes=Decimal(delivered), committed_kw_minutes=Decimal(committed)) == expected


def test_uptime_without_commitment_is_unknown():
    assert uptime_pct(delivered_kw_minutes=Decimal("0"), committed_kw_minutes=Decimal("0")) is None


def test_min_sites_without_n_minus_1_spreads_evenly_and_never_places_zero():
    sites = [site(1, "100"), site(2, "100"), site(3, "100")]

    assert [s.capacity_kw for s in plan(sites, "100", min_sites=3)] == [
        Decimal("33.334"),
        Decimal("33.333"),
        Decimal("33.333"),
    ]
    with pytest.raises(NoPlacement, match="spread over 2 sites"):
        plan(sites, "0.001", min_sites=2)


def test_hall_limit_fills_the_halls_from_the_lowest_pue_up():
    """1,000 kW of facility power: 400 kW of tanks at PUE 1.25 take 500 kW, the 500 left carry 250 kW of a 2.0
    air hall (of its 600); one hall alone is min(its kW, power / PUE); an empty hall or no hall carries nothing."""
    tanks, air = (Decimal("400"), Decimal("1.25")), (Decimal("600"), Decimal("2.0"))

    assert hall_limit_kw(Decimal("1000"), [air, tanks]) == Decimal("650")
    assert hall_limit_kw(Decimal("1000"), [air]) == Decimal("500")
    assert hall_limit_kw(Decimal("1000"), [tanks]) == Decimal("400")
    assert hall_limit_kw(Decimal("1000"), [(Decimal("0"), Decimal("1.03"))]) == Decimal("0")
    assert hall_limit_kw(Decimal("1000"), []) == Decimal("0")
    assert hall_limit_kw(Decimal("1000"), [(Decimal("700"), Decimal("3"))]) == Decimal("333.333")

"""Cross-site migration: the optimizer moves running placements when the saving beats the move's cost.

The small fleet of tests/sla/conftest.py (oslo, dublin, texas), priced so that the economics are plain: contracts
are quoted at 1 USD per million tokens (worth serving at any energy price used here), then spot inference sells
at 0.001 USD per million tokens and hashprice is zero, so no unit runs for the spot market and a contract's kW
costs exactly its site's energy (x PUE). Moving a placement then saves `kW x PUE x (price here - price there)`
per hour, which is what the engine's re-solve reports.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from optimizer.choices import RunStatus, RunTrigger
from optimizer.services import optimize_now
from sites.choices import CoolingType, SiteStatus
from sites.models import HardwareModel
from sites.services import set_site_status
from sla.capacity import peak_kw
from sla.choices import ContractStatus, PlacementKind
from sla.models import Contract, Downtime, Placement
from sla.services import (
    CapacityRequest,
    DeliveryRow,
    cancel_contract,
    candidate_sites,
    create_contract,
    fail_over_site,
    load_bookings,
    migration_cost,
    migration_worth_it,
    record_deliveries,
    replace_lost_capacity,
)
from tests.factories import T0, ContractFactory, EnergyPriceFactory, MarketPriceFactory, PlacementFactory

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)
NOW = T0 + 2 * H  # placements admitted at T0 have run past the 60-minute dwell time


@pytest.fixture(autouse=True)
def _knobs(settings):
    settings.ENERGYARB = {
        **settings.ENERGYARB,
        "FORECAST": "persistence",  # prices held over the horizon: the saving per hour is the price gap now
        "MIGRATION_WARMUP_MINUTES": 10.0,
        "MIGRATION_DOWNTIME_MINUTES": 2.0,
        "MIGRATION_MIN_DWELL_MINUTES": 60.0,
        "MIGRATION_MAX_EVALUATIONS": 40,
    }


@pytest.fixture
def market(fleet, frozen):
    """The token price contracts are quoted on at T0."""
    MarketPriceFactory(
        interval_start=T0, hashprice_usd_per_ph_day=Decimal("0"), inference_price_usd_per_mtok=Decimal("1")
    )
    return fleet


def admit(customer, tier, kw, *, hours=12, region=""):
    return create_contract(
        customer=customer,
        request=CapacityRequest(
            tier=tier, capacity_kw=Decimal(kw), starts_at=T0, ends_at=T0 + hours * H, region_preference=region
        ),
    )


def price(fleet, at, oslo=40, dublin=40, texas=40):
    """Energy prices (USD/MWh) at `at` for the three sites, and a market where spot and mining earn nothing."""
    for site, usd in ((fleet.oslo, oslo), (fleet.dublin, dublin), (fleet.texas, texas)):
        EnergyPriceFactory(site=site, interval_start=at, price_usd_per_mwh=Decimal(usd))
    MarketPriceFactory(
        interval_start=at, hashprice_usd_per_ph_day=Decimal("0"), inference_price_usd_per_mtok=Decimal("0.001")
    )


def run_at(at):
    served_until(at)
    with time_machine.travel(at, tick=False):
        run = optimize_now(trigger=RunTrigger.MANUAL)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return run


def served_until(at):
    """Delivery records for every minute before `at` of the active contracts, as if the optimizer had run each
    interval: without them every earlier minute counts as undelivered (sla.services.uptime), a short contract
    looks credited in full already, and its shortfall price (optimizer.credit_pricing) falls to nothing."""
    rows = []
    for contract in Contract.objects.filter(status=ContractStatus.ACTIVE, starts_at__lt=at):
        moment = contract.starts_at
        while moment < at:
            minutes = int(min(at - moment, 24 * H).total_seconds() // 60)
            rows.append(DeliveryRow(contract.pk, moment, minutes, contract.capacity_kw, contract.capacity_kw))
            moment += timedelta(minutes=minutes)
    record_deliveries(rows=rows)


def sites_now(contract, at) -> dict[str, Decimal]:
    return {
        p.site.code: p.capacity_kw
        for p in Placement.objects.filter(contract=contract).current(at).select_related("site")
    }


def history(contract) -> list[tuple]:
    return [
        (p.site.code, p.valid_from, p.valid_to, p.kind)
        for p in Placement.objects.filter(contract=contract).select_related("site").order_by("valid_from", "pk")
    ]


# The cost model and the rule.


def test_cost_is_warmup_energy_at_the_destination_plus_downtime_at_price_and_credit_exposure():
    cost = migration_cost(
        capacity_kw=300.0,
        price_usd_per_kwh=2.0,
        penalty_usd_per_kwh=4.0,
        destination_pue=1.2,
        destination_energy_usd_per_mwh=50.0,
        warmup_minutes=10.0,
        downtime_minutes=2.0,
    )

    assert cost.warmup_kwh == pytest.approx(300 * 10 / 60 * 1.2)  # 60 kWh drawn while the model loads
    assert cost.energy_usd == pytest.approx(60 * 50 / 1000)  # 3 USD
    assert cost.downtime_usd == pytest.approx(300 * 2 / 60 * (2.0 + 4.0))  # 60 USD: 10 kWh unserved x 6 USD
    assert cost.total_usd == pytest.approx(63.0)


def test_a_negative_price_never_pays_for_a_move_and_a_covered_cutover_costs_no_downtime():
    cost = migration_cost(
        capacity_kw=300.0,
        price_usd_per_kwh=2.0,
        penalty_usd_per_kwh=200.0,
        destination_pue=1.1,
        destination_energy_usd_per_mwh=-40.0,
        unserved_kw=0.0,  # one site of an N-1 contract: the others hold the full capacity meanwhile
    )

    assert cost.energy_usd == 0 and cost.downtime_usd == 0 and cost.total_usd == 0


def test_worth_it_only_when_the_saving_after_the_downtime_beats_the_cost():
    cost = migration_cost(
        capacity_kw=100.0,
        price_usd_per_kwh=1.0,
        penalty_usd_per_kwh=0.0,
        destination_pue=1.0,
        destination_energy_usd_per_mwh=0.0,
        warmup_minutes=0.0,
        downtime_minutes=30.0,
    )  # 50 USD: 100 kW down for half an hour at 1 USD/kWh
    assert cost.total_usd == pytest.approx(50.0)

    assert migration_worth_it(saving_usd_per_h=10.0, hours_remaining=5.6, cost=cost)  # 10 x 5.1 = 51 > 50
    assert not migration_worth_it(saving_usd_per_h=10.0, hours_remaining=5.5, cost=cost)  # 50: a tie stays
    assert not migration_worth_it(saving_usd_per_h=10.0, hours_remaining=5.4, cost=cost)
    assert not migration_worth_it(saving_usd_per_h=1000.0, hours_remaining=0.5, cost=cost)  # all downtime


# The optimizer decides.


def test_placement_on_a_site_that_becomes_expensive_moves_to_a_cheaper_one(market, customer):
    standard = admit(customer, market.standard, "200")
    assert sites_now(standard, T0) == {"oslo": Decimal("200")}  # the cheapest site at admission
    price(market, NOW, oslo=2000, dublin=40, texas=40)

    run = run_at(NOW)

    assert sites_now(standard, NOW) == {"dublin": Decimal("200")}
    assert history(standard) == [
        ("oslo", T0, NOW, PlacementKind.ADMISSION),  # closed at the move, never rewritten
        ("dublin", NOW, T0 + 12 * H, PlacementKind.MIGRATION),
    ]
    moved = Placement.objects.get(contract=standard, site=market.dublin)
    assert moved.reason.startswith("migration oslo -> dublin: saves ") and " > cost " in moved.reason
    [decision] = run.details["migrations"]["decisions"]
    assert decision["moved"] and decision["kind"] == "migration" and decision["hours"] == 6.0
    # The engine's saving is the energy gap: 200 kW x PUE x (2,000 - 40) USD/MWh per hour, at the PUE of the hall
    # the GPU nodes run in (Oslo's own cooling is a liquid loop: its GPU nodes sit in a chilled hall).
    (pue,) = {value for code, value in run.inputs["sites"]["oslo"]["hall_pue"].items() if "gpu" in code}
    assert decision["saving_usd_per_h"] == pytest.approx(200 * pue * 1960 / 1000, rel=1e-3)
    assert decision["saving_usd"] > decision["cost"]["total_usd"] > 0
    cutover = Downtime.objects.get(contract=standard)
    assert (cutover.unserved_kw, cutover.started_at, cutover.ended_at) == (Decimal("200"), NOW, NOW + 2 * H / 60)
    assert "Contract placement: migration oslo -> dublin" in run.explanation


def test_a_move_to_a_chilled_gpu_hall_pays_that_halls_pue_for_its_warm_up(market, customer):
    # Air-cooled GPU nodes at the immersion sites sit in their chilled air hall: the warm-up at the destination
    # draws 200 kW x 10 min x that hall's PUE, not the tanks' (the site's own PUE).
    HardwareModel.objects.filter(code="gpu_node").update(cooling_type=CoolingType.AIR)
    standard = admit(customer, market.standard, "200")
    price(market, NOW, oslo=2000, dublin=40, texas=45)

    run = run_at(NOW)

    assert sites_now(standard, NOW) == {"dublin": Decimal("200")}
    [decision] = run.details["migrations"]["decisions"]
    dublin = run.inputs["sites"]["dublin"]
    (hall,) = {value for code, value in dublin["hall_pue"].items() if "gpu" in code}
    assert hall > dublin["pue"] + 0.1  # the chilled hall, well above the tanks
    assert decision["cost"]["warmup_kwh"] == pytest.approx(200 * 10 / 60 * hall, abs=1e-3)


def test_saving_just_below_the_cost_stays_and_just_above_moves(market, customer, settings):
    standard = admit(customer, market.standard, "200")
    price(market, NOW, oslo=300, dublin=40, texas=40)
    knobs = settings.ENERGYARB

    settings.ENERGYARB = {**knobs, "MIGRATION_WARMUP_MINUTES": 1e6}  # a prohibitive warm-up: priced, not moved
    run_at(NOW)  # the first run starts the units; the runs below all start from that allocation
    [priced] = run_at(NOW).details["migrations"]["decisions"]
    assert not priced["moved"] and sites_now(standard, NOW) == {"oslo": Decimal("200")}
    # The warm-up (the only cost term that does not touch the saving) at which the cost equals the saving.
    energy_per_minute = priced["cost"]["energy_usd"] / 1e6
    breakeven = (priced["saving_usd"] - priced["cost"]["downtime_usd"]) / energy_per_minute

    settings.ENERGYARB = {**knobs, "MIGRATION_WARMUP_MINUTES": breakeven * 1.01}
    [above] = run_at(NOW).details["migrations"]["decisions"]
    assert above["cost"]["total_usd"] > above["saving_usd"] and not above["moved"]
    assert sites_now(standard, NOW) == {"oslo": Decimal("200")}

    settings.ENERGYARB = {**knobs, "MIGRATION_WARMUP_MINUTES": breakeven * 0.99}
    [below] = run_at(NOW).details["migrations"]["decisions"]
    assert below["cost"]["total_usd"] < below["saving_usd"] and below["moved"]
    assert sites_now(standard, NOW) == {"dublin": Decimal("200")}


def test_a_placement_stays_put_for_the_dwell_time(market, customer):
    standard = admit(customer, market.standard, "200")
    early = T0 + H / 2
    price(market, early, oslo=2000)

    assert run_at(early).details["migrations"]["decisions"] == []  # 30 minutes at oslo: too early
    assert sites_now(standard, early) == {"oslo": Decimal("200")}

    price(market, NOW, oslo=2000)
    run_at(NOW)
    assert sites_now(standard, NOW) == {"dublin": Decimal("200")}

    # Now dublin is the expensive one, but the moved placement has run there for 30 minutes only.
    price(market, NOW + H / 2, dublin=2000)
    run_at(NOW + H / 2)
    assert sites_now(standard, NOW + H / 2) == {"dublin": Decimal("200")}
    price(market, NOW + 2 * H, dublin=2000)
    run_at(NOW + 2 * H)
    assert set(sites_now(standard, NOW + 2 * H)) == {"oslo"}


def test_moves_never_overbook_a_destination(market, customer):
    # oslo 750 of 800 kW: three Standard contracts; dublin 200 of 500 kW; texas empty (300 kW).
    first, second, third = (admit(customer, market.standard, "250") for _ in range(3))
    admit(customer, market.flexible, "200", region="europe")  # oslo has 50 kW left: dublin
    price(market, NOW, oslo=2000, texas=45)  # dublin first (texas a little dearer: no tie for rounding to break)

    run = run_at(NOW)

    assert sites_now(first, NOW) == {"dublin": Decimal("250")}  # dublin: 300 free -> 50
    assert sites_now(second, NOW) == {"texas": Decimal("250")}  # dublin is full now; texas 300 free -> 50
    assert sites_now(third, NOW) == {"oslo": Decimal("250")}  # room nowhere: it stays
    assert [d["contract"] for d in run.details["migrations"]["decisions"]] == [first.pk, second.pk]
    rooms = candidate_sites(lock=False)
    load_bookings(rooms, start=NOW, end=T0 + 12 * H)
    assert all(peak_kw(r.bookings, NOW, T0 + 12 * H) <= r.limit_kw for r in rooms)


def test_premium_moves_one_site_at_a_time_and_keeps_its_distinct_sites(market, customer):
    premium = admit(customer, market.premium, "200")
    assert sites_now(premium, T0) == {"oslo": Decimal("200"), "texas": Decimal("200")}  # N-1
    price(market, NOW, oslo=2000, texas=3000)

    run = run_at(NOW)

    # Both sites got dearer, yet one placement moves per run (its cut-overs never overlap), and never onto the
    # site it already uses: still two distinct sites each holding the full capacity.
    assert sites_now(premium, NOW) == {"oslo": Decimal("200"), "dublin": Decimal("200")}
    [decision] = run.details["migrations"]["decisions"]
    assert (decision["from"], decision["to"], decision["moved"]) == ("texas", "dublin", True)
    assert decision["cost"]["downtime_usd"] == 0  # oslo carries the full capacity during the cut-over
    assert not Downtime.objects.filter(contract=premium).exists()

    price(market, NOW + 2 * H, oslo=2000, texas=40)  # the next run may move the other site
    run_at(NOW + 2 * H)
    assert sites_now(premium, NOW + 2 * H) == {"dublin": Decimal("200"), "texas": Decimal("200")}


def test_spot_preempted_by_a_failover_is_replaced_when_capacity_frees(market, customer, outsider):
    admit(customer, market.standard, "300")  # oslo
    spot = admit(outsider, market.spot, "100")  # oslo
    admit(customer, market.flexible, "400")  # oslo, now full
    other_spot = admit(outsider, market.spot, "100", region="europe")  # dublin
    with time_machine.travel(T0 + H, tick=False):
        set_site_status(site=market.oslo, status=SiteStatus.MAINTENANCE, reason="chiller")
        report = fail_over_site(site=market.oslo, reason="chiller")
    assert report.preempted == [spot.pk] and sites_now(spot, T0 + H) == {}  # texas and dublin are full
    assert Downtime.objects.get(contract=spot, ended_at__isnull=True).unserved_kw == Decimal("100")
    price(market, NOW)
    assert run_at(NOW).details["migrations"]["still_short"] == [[spot.pk, 100.0]]  # nothing has freed up yet

    with time_machine.travel(NOW + H / 2, tick=False):
        cancel_contract(contract=other_spot)
    price(market, NOW + H)
    run = run_at(NOW + H)

    assert sites_now(spot, NOW + H) == {"dublin": Decimal("100")}
    assert history(spot)[-1] == ("dublin", NOW + H, T0 + 12 * H, PlacementKind.REPLACEMENT)
    assert Downtime.objects.get(contract=spot).ended_at == NOW + H
    assert run.details["migrations"]["replaced"] == [[spot.pk, "dublin", 100.0]]


def test_capacity_given_back_closes_the_downtime_and_what_is_still_missing_opens_a_new_one(
    market, customer, django_assert_max_num_queries
):
    market.texas.delete()

    def running(tier, kw, **placed):
        contract = ContractFactory(
            customer=customer, tier=tier, status="active", capacity_kw=Decimal(kw), starts_at=T0, ends_at=T0 + 12 * H
        )
        for site, kw_on_site in placed.items():
            site = getattr(market, site)
            PlacementFactory(contract=contract, site=site, capacity_kw=Decimal(kw_on_site), valid_to=T0 + 12 * H)
        return contract

    running(market.standard, "700", oslo="700")
    running(market.standard, "250", dublin="250")  # oslo full, 250 kW free on dublin
    standard = running(market.standard, "300", oslo="100")  # 200 kW short: dublin takes it all
    flexible = running(market.flexible, "200")  # 200 kW short: 50 kW left for it
    for contract in (standard, flexible):
        Downtime.objects.create(contract=contract, site=market.oslo, unserved_kw=Decimal("200"), started_at=T0,
                                reason="failover from oslo: no room")  # fmt: skip

    with django_assert_max_num_queries(12):  # the same queries however many contracts are short
        report = replace_lost_capacity(now=NOW)

    assert report.placed == [(standard.pk, "dublin", Decimal("200")), (flexible.pk, "dublin", Decimal("50"))]
    assert report.short == [(flexible.pk, Decimal("150"))]
    assert not Downtime.objects.filter(contract=standard, ended_at__isnull=True).exists()
    closed, still = Downtime.objects.filter(contract=flexible).order_by("started_at")
    assert closed.ended_at == NOW
    assert (still.unserved_kw, still.started_at, still.ended_at, still.site) == (Decimal("150"), NOW, None, market.oslo)
    assert still.reason == "failover from oslo: no room (partly re-placed)"


def test_failed_over_placement_returns_when_its_site_is_back_online(market, customer):
    standard = admit(customer, market.standard, "300")
    with time_machine.travel(T0 + H, tick=False):
        set_site_status(site=market.oslo, status=SiteStatus.MAINTENANCE, reason="chiller")
        fail_over_site(site=market.oslo, reason="chiller")
    assert sites_now(standard, T0 + H) == {"texas": Decimal("300")}
    with time_machine.travel(T0 + 2 * H, tick=False):
        set_site_status(site=market.oslo, status=SiteStatus.ONLINE, reason="chiller fixed")
    later = T0 + 3 * H
    price(market, later, oslo=20, dublin=400, texas=400)

    run = run_at(later)

    assert history(standard) == [
        ("oslo", T0, T0 + H, PlacementKind.ADMISSION),
        ("texas", T0 + H, later, PlacementKind.FAILOVER),
        ("oslo", later, T0 + 12 * H, PlacementKind.RETURN),
    ]
    [decision] = run.details["migrations"]["decisions"]
    assert decision["kind"] == "return" and decision["reason"].startswith("return texas -> oslo: saves ")
    assert Placement.objects.get(contract=standard, kind=PlacementKind.RETURN).moved_from == market.texas


def test_contract_detail_api_and_admin_show_why_each_placement_exists(market, customer, customer_api, admin_client):
    standard = admit(customer, market.standard, "200")
    price(market, NOW, oslo=2000)
    run_at(NOW)

    placements = customer_api.get(f"/api/contracts/{standard.pk}/").json()["placements"]
    assert [(p["site"], p["kind"]) for p in placements] == [("oslo", "admission"), ("dublin", "migration")]
    assert placements[1]["reason"].startswith("migration oslo -> dublin: saves ")

    page = admin_client.get(f"/admin/sla/contract/{standard.pk}/change/").content.decode()
    assert "Migration (optimizer: cheaper elsewhere)" in page and "migration oslo -&gt; dublin: saves " in page

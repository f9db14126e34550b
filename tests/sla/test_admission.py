"""Admission control through the services: exact capacity boundaries, Spot preemption, quotes, lifecycle."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from sites.choices import ClimateZone, CoolingType, SiteStatus
from sites.models import HardwareModel, SiteInventory
from sla.capacity import peak_kw
from sla.choices import ContractStatus
from sla.models import Contract, Placement, PreemptionNotice
from sla.services import (
    AdmissionRefused,
    CapacityRequest,
    QuoteUnavailable,
    admit_contract,
    cancel_contract,
    candidate_sites,
    create_contract,
    create_contract_from_quote,
    create_quote,
    load_bookings,
    reject_contract,
)
from sla.tasks import expire_contracts, start_contracts
from tests.factories import (
    T0,
    ContractFactory,
    HardwareModelFactory,
    MarketPriceFactory,
    SiteInventoryFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)


def ask(tier, kw, *, start=T0, hours=2, region=""):
    return CapacityRequest(
        tier=tier,
        capacity_kw=Decimal(kw),
        starts_at=start,
        ends_at=start + hours * H,
        region_preference=region,
    )


def placed(contract) -> dict[str, Decimal]:
    return {p.site.code: p.capacity_kw for p in Placement.objects.filter(contract=contract).select_related("site")}


def peaks() -> dict[str, tuple[Decimal, Decimal]]:
    """Per site: (peak committed kW over all time, SLA limit)."""
    rooms = candidate_sites(lock=False)
    load_bookings(rooms, start=T0 - 100 * H, end=None)
    return {r.code: (peak_kw(r.bookings, T0 - 100 * H, T0 + 10_000 * H), r.limit_kw) for r in rooms}


def test_sla_limit_is_inference_hardware_bounded_by_power(fleet):
    limits = {room.code: room.limit_kw for room in candidate_sites(lock=False)}

    assert limits == {"oslo": Decimal("800"), "dublin": Decimal("500"), "texas": Decimal("300")}


def test_sla_limit_counts_facility_power_at_the_pue_of_a_hot_design_day(fleet, frozen, customer):
    """Texas turned air-cooled with 400 kW of facility power: at its climate's hot design day (humid subtropical,
    32.8 degN: 38.3 degC) air cooling runs at PUE 1.745, so that power carries 229.286 kW of IT, less than its
    300 kW of GPUs. Power at tonight's PUE would have let a promise through that a summer afternoon breaks."""
    fleet.texas.cooling_type, fleet.texas.climate_zone = CoolingType.AIR, ClimateZone.HUMID_SUBTROPICAL
    fleet.texas.latitude, fleet.texas.power_capacity_kw = Decimal("32.7767"), Decimal("400")
    fleet.texas.save()
    HardwareModel.objects.filter(code="gpu_node").update(cooling_type=CoolingType.AIR)
    fleet.oslo.delete(), fleet.dublin.delete()

    (room,) = candidate_sites(lock=False)

    assert room.limit_kw == Decimal("229.286")
    create_contract(customer=customer, request=ask(fleet.standard, "229.286"))
    with pytest.raises(AdmissionRefused):
        create_contract(customer=customer, request=ask(fleet.spot, "0.001"))


def test_sla_limit_counts_the_pue_of_the_hall_the_gpu_nodes_run_in(fleet, customer):
    """Air-cooled GPU nodes at an immersion site sit in its chilled air hall, not in the tanks: on Oslo's design
    day (28.9 degC) that hall runs at PUE 1.329489 (the tanks at 1.034018), so 700 kW of facility power carries
    526.518 kW of them, not all 800 (nor the 676.970 the site's own PUE would let through). Half the nodes in the
    tanks (400 kW at 1.034018 = 413.607 kW of power) leave 286.393 kW for the air hall: 215.415 kW more."""
    gpu = HardwareModel.objects.get(code="gpu_node")
    air_gpu = HardwareModelFactory(
        inference=True, code="gpu_air", power_kw_per_unit=Decimal("10"), cooling_type=CoolingType.AIR
    )
    SiteInventory.objects.filter(site=fleet.oslo, hardware_model=gpu).update(hardware_model=air_gpu)
    fleet.oslo.power_capacity_kw = Decimal("700")
    fleet.oslo.save()
    fleet.dublin.delete(), fleet.texas.delete()

    assert limits_by_code() == {"oslo": Decimal("526.518")}
    create_contract(customer=customer, request=ask(fleet.standard, "526.518"))
    with pytest.raises(AdmissionRefused):
        create_contract(customer=customer, request=ask(fleet.spot, "0.001"))

    SiteInventory.objects.filter(site=fleet.oslo, hardware_model=air_gpu).update(units_available=40)
    SiteInventoryFactory(site=fleet.oslo, hardware_model=gpu, units_installed=40)
    assert limits_by_code() == {"oslo": Decimal("615.415")}


def limits_by_code() -> dict[str, Decimal]:
    return {room.code: room.limit_kw for room in candidate_sites(lock=False)}


def test_unavailable_units_and_offline_sites_carry_nothing(fleet):
    SiteInventory.objects.filter(site=fleet.dublin).update(units_available=20)
    fleet.texas.status = SiteStatus.MAINTENANCE
    fleet.texas.save()

    limits = {room.code: room.limit_kw for room in candidate_sites(lock=False)}

    assert limits == {"oslo": Decimal("800"), "dublin": Decimal("200")}


def test_request_filling_a_site_exactly_fits_and_one_kw_more_is_refused(fleet, frozen, customer):
    fleet.dublin.delete(), fleet.texas.delete()  # one site: oslo, 800 kW
    create_contract(customer=customer, request=ask(fleet.standard, "300"))

    exact = create_contract(customer=customer, request=ask(fleet.standard, "500"))

    assert placed(exact) == {"oslo": Decimal("500")}
    with pytest.raises(AdmissionRefused, match=r"the most any online site can take for the whole window is 0\.000 kW"):
        create_contract(customer=customer, request=ask(fleet.standard, "1"))
    assert Contract.objects.count() == 2
    assert peaks()["oslo"] == (Decimal("800"), Decimal("800"))


def test_capacity_is_reused_after_a_window_ends(fleet, frozen, customer):
    fleet.dublin.delete(), fleet.texas.delete()
    create_contract(customer=customer, request=ask(fleet.standard, "800", hours=2))

    later = create_contract(customer=customer, request=ask(fleet.standard, "800", start=T0 + 2 * H))

    assert later.status == ContractStatus.REQUESTED and later.admitted_at == T0
    with pytest.raises(AdmissionRefused):
        create_contract(customer=customer, request=ask(fleet.standard, "1", start=T0 + H, hours=2))


def test_premium_is_placed_n_minus_1_on_two_sites(fleet, frozen, customer):
    contract = create_contract(customer=customer, request=ask(fleet.premium, "250"))

    assert placed(contract) == {"oslo": Decimal("250"), "texas": Decimal("250")}


def test_premium_too_big_for_two_sites_goes_to_three_at_half(fleet, frozen, customer):
    contract = create_contract(customer=customer, request=ask(fleet.premium, "600"))

    assert placed(contract) == {"oslo": Decimal("300"), "dublin": Decimal("300"), "texas": Decimal("300")}


def test_premium_refused_when_n_minus_1_cannot_hold(fleet, frozen, customer):
    with pytest.raises(AdmissionRefused, match="N-1"):
        create_contract(customer=customer, request=ask(fleet.premium, "700"))
    assert not Contract.objects.exists()


def test_region_preference_places_in_that_region_first(fleet, frozen, customer):
    contract = create_contract(customer=customer, request=ask(fleet.flexible, "100", region="americas"))

    assert placed(contract) == {"texas": Decimal("100")}


def test_spot_never_blocks_a_higher_tier_and_is_noticed_before_displacement(fleet, frozen, customer, outsider):
    fleet.dublin.delete(), fleet.texas.delete()
    spot_now = create_contract(customer=outsider, request=ask(fleet.spot, "500", hours=6))
    spot_later = create_contract(customer=outsider, request=ask(fleet.spot, "300", start=T0 + 3 * H))
    with time_machine.travel(T0 + H, tick=False):
        standard = create_contract(customer=customer, request=ask(fleet.standard, "600", start=T0 + 2 * H, hours=4))

    assert placed(standard) == {"oslo": Decimal("600")}
    notices = {n.contract_id: n for n in PreemptionNotice.objects.all()}
    assert set(notices) == {spot_later.pk, spot_now.pk}
    for notice in notices.values():
        assert notice.issued_at == T0 + H and notice.effective_at >= notice.issued_at
        assert notice.displaced_by == standard
    assert notices[spot_now.pk].effective_at == T0 + 2 * H
    # The running Spot keeps the hours it had before the displacement; the one that had not begun is dropped.
    assert list(Placement.objects.filter(contract=spot_now).values_list("valid_to", flat=True)) == [T0 + 2 * H]
    assert not Placement.objects.filter(contract=spot_later).exists()
    assert peaks()["oslo"][0] <= Decimal("800")


def test_a_notice_never_takes_effect_after_the_displaced_placement_ended(fleet, frozen, customer, outsider):
    """A contract starting "now" reaches admission a few milliseconds after its start: the notice took effect at
    admission's now, while the displaced placement had been ended at the (earlier) start, 7 ms before the notice."""
    fleet.dublin.delete(), fleet.texas.delete()
    spot = create_contract(customer=outsider, request=ask(fleet.spot, "500", start=T0 - H, hours=6))
    with time_machine.travel(T0 + timedelta(milliseconds=7), tick=False):
        create_contract(customer=customer, request=ask(fleet.standard, "600", start=T0))

    [notice] = PreemptionNotice.objects.filter(contract=spot)
    [placement] = Placement.objects.filter(contract=spot)
    assert notice.effective_at == T0 + timedelta(milliseconds=7) >= notice.issued_at
    assert placement.valid_to == notice.effective_at  # the loss never precedes the notice


def test_spot_displaces_only_as_much_as_needed(fleet, frozen, customer, outsider):
    fleet.dublin.delete(), fleet.texas.delete()
    first = create_contract(customer=outsider, request=ask(fleet.spot, "400"))
    second = create_contract(customer=outsider, request=ask(fleet.spot, "400"))

    create_contract(customer=customer, request=ask(fleet.flexible, "100"))

    assert list(PreemptionNotice.objects.values_list("contract_id", flat=True)) == [second.pk]
    assert Placement.objects.filter(contract=first).exists()


def test_spot_cannot_displace_spot(fleet, frozen, customer):
    fleet.dublin.delete(), fleet.texas.delete()
    create_contract(customer=customer, request=ask(fleet.spot, "800"))

    with pytest.raises(AdmissionRefused):
        create_contract(customer=customer, request=ask(fleet.spot, "1"))


def test_an_admitted_contract_answers_for_its_placements_like_one_read_back(fleet, frozen, customer):
    contract = create_contract(customer=customer, request=ask(fleet.premium, "100"))

    assert contract.placements.count() == 2 and not contract.service_credits.exists()
    assert set(contract.placements.filter(site=fleet.oslo).values_list("capacity_kw", flat=True)) == {Decimal("100")}
    assert [p.pk for p in contract.placements.all()] == [p.pk for p in Placement.objects.filter(contract=contract)]


def test_contract_admission_is_audited_with_who_and_why(fleet, frozen, customer):
    contract = create_contract(customer=customer, request=ask(fleet.standard, "10"), actor=customer.user)

    record = contract.history.get()
    assert (record.history_user, record.history_change_reason) == (customer.user, "admitted (API request)")
    assert record.status == ContractStatus.ACTIVE


def test_quote_prices_on_the_rate_card_and_shows_the_newest_token_price(fleet, frozen, customer):
    MarketPriceFactory(interval_start=T0 - 10 * H, inference_price_usd_per_mtok=Decimal("9.0000"))
    MarketPriceFactory(interval_start=T0 - H, inference_price_usd_per_mtok=Decimal("2.5000"))

    quote = create_quote(customer=customer, request=ask(fleet.standard, "80"))

    # Reference: 2.5 USD/Mtok x 1,200 tok/s/kW x 3,600 / 1e6 = 10.8 USD/kWh when every token sells.
    assert quote.base_value_usd_per_kwh == Decimal("10.800000")
    assert quote.utilization_pct == Decimal("10.00")
    # Charged: 415 USD/kW-month x 2.00 x (1 + 0.5 x 80/800) = 871.50 USD/kW-month = 1.193836 USD/kWh
    assert (quote.base_rate_usd_per_kw_month, quote.price_usd_per_kw_month) == (Decimal("415"), Decimal("871.50"))
    assert quote.price_usd_per_kwh == Decimal("1.193836")
    assert quote.total_usd == Decimal("191.01")
    assert quote.sites == [
        {"site_id": fleet.oslo.pk, "site": "oslo", "name": "Oslo", "market_region": "europe", "capacity_kw": "80"}
    ]
    assert quote.valid_until == T0 + timedelta(minutes=15)


def test_term_price_is_the_same_at_every_hour_of_the_day(fleet, customer, settings):
    """The token price swings through the day; a quote for the same request costs the same morning and evening."""
    settings.ENERGYARB = {**settings.ENERGYARB, "SLA_BASE_RATE_USD_PER_KW_MONTH": 500.0}
    starts = T0 + timedelta(days=2)
    prices = []
    for hour, token_price in ((3, "0.4000"), (13, "1.9000"), (21, "0.9000")):
        moment = T0 + timedelta(hours=hour)
        MarketPriceFactory(
            interval_start=moment - timedelta(minutes=5), inference_price_usd_per_mtok=Decimal(token_price)
        )
        with time_machine.travel(moment, tick=False):
            request = CapacityRequest(
                tier=fleet.premium, capacity_kw=Decimal("50"), starts_at=starts, ends_at=starts + timedelta(days=30)
            )
            quote = create_quote(customer=customer, request=request)
        prices.append((quote.price_usd_per_kw_month, quote.price_usd_per_kwh, quote.total_usd))
    assert len(set(prices)) == 1, prices
    assert prices[0][0] == (
        Decimal("500") * Decimal("3.5") * (1 + Decimal("0.5") * quote.utilization_pct / 100)
    ).quantize(Decimal("0.01"))


def test_contract_from_quote_keeps_the_quoted_price_even_if_the_market_moved(fleet, frozen, customer):
    quote = create_quote(customer=customer, request=ask(fleet.standard, "80"))
    MarketPriceFactory(interval_start=T0, inference_price_usd_per_mtok=Decimal("50.0000"))

    contract = create_contract_from_quote(quote=quote)

    assert contract.quote == quote
    assert (contract.quoted_price_usd_per_kwh, contract.quoted_total_usd) == (quote.price_usd_per_kwh, quote.total_usd)


def test_quote_bought_after_its_start_runs_for_its_full_duration_from_now(fleet, frozen, customer):
    quote = create_quote(customer=customer, request=ask(fleet.standard, "80", hours=3))

    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        contract = create_contract_from_quote(quote=quote)

    assert (contract.starts_at, contract.ends_at) == (T0 + timedelta(minutes=10), T0 + timedelta(minutes=190))


def test_a_quote_still_fitting_is_written_first_and_locks_the_sites_only_to_check_it(
    fleet, frozen, customer, django_assert_num_queries, settings
):
    settings.ENERGYARB = {**settings.ENERGYARB, "SLA_CUSTOMER_SHARE_PCT": 50.0}  # the default cap
    quote = create_quote(customer=customer, request=ask(fleet.premium, "100"))

    # BEGIN, the contract with its placements and its history row (one statement on PostgreSQL, three on SQLite),
    # the customer's lock, its contracts and the fleet's SLA capacity (its cap), the plan's sites locked, peaks,
    # COMMIT. PostgreSQL: 10 -> 9 when the placements joined the contract's statement, 9 -> 8 when the history row did.
    writes = 1 if connection.vendor == "postgresql" else 3
    with django_assert_num_queries(7 + writes) as queries:
        contract = create_contract_from_quote(quote=quote)

    statements = [query["sql"] for query in queries.captured_queries]
    written = statements[1 : 1 + writes]  # the writes come first
    assert all(sql.startswith(("INSERT", "WITH parent AS (INSERT")) for sql in written)
    assert 'INSERT INTO "sla_placement"' in " ".join(written) and 'INTO "sla_historicalcontract"' in written[-1]
    statements = statements[:1] + [""] * (3 - writes) + statements[1:]  # numbered as with three INSERTs
    assert 'FROM "sla_customer"' in statements[4] and 'FROM "sla_contract"' in statements[5]
    assert "FOR NO KEY UPDATE" in statements[4] or connection.vendor == "sqlite"
    lock = 7
    assert 'FROM "sites_site"' in statements[lock] and "FOR UPDATE" not in statements[6]
    assert "FOR UPDATE" in statements[lock] or connection.vendor == "sqlite"  # SQLite locks the whole database
    assert placed(contract) == {site["site"]: Decimal(site["capacity_kw"]) for site in quote.sites}
    assert contract.history.get().history_change_reason == f"admitted (quote {quote.pk})"


def test_a_purchase_reads_the_peaks_of_the_sites_it_locked_and_no_others(fleet, frozen, customer, monkeypatch):
    """Checked under the locks, a plan needs the peaks of its own sites only: what the purchase reads must not grow
    with the bookings on the rest of the fleet. The site ids are parameters of a statement fixed per number of
    sites (compiled once, prepared on the server)."""
    from core.db import PreparedRead
    from sla.services.admission import SOME_SITES_PEAKS_READS, WINDOW_PEAKS_SQL

    quote = create_quote(customer=customer, request=ask(fleet.premium, "100"))
    planned = {site["site_id"] for site in quote.sites}
    others = [site for site in (fleet.oslo, fleet.dublin, fleet.texas) if site.pk not in planned]
    assert len(planned) == 2 and others
    for site in others:  # booked on every other site over the quoted window
        contract = ContractFactory(status=ContractStatus.ACTIVE, starts_at=T0, ends_at=T0 + 2 * H)
        Placement.objects.create(contract=contract, site=site, capacity_kw=Decimal("5"), valid_from=T0,
                                 valid_to=T0 + 2 * H)  # fmt: skip
    reads = []
    original = PreparedRead.rows
    monkeypatch.setattr(PreparedRead, "rows", lambda self, **values: reads.append((self, original(self, **values)))
                        or reads[-1][1])  # fmt: skip

    contract = create_contract_from_quote(quote=quote)

    peak_reads = [(read, rows) for read, rows in reads if read.template == WINDOW_PEAKS_SQL]
    assert [read for read, _ in peak_reads] == [SOME_SITES_PEAKS_READS[2]]
    assert {site_id for site_id, _, _ in peak_reads[0][1]} == planned  # its own placements, nothing else
    assert set(placed(contract)) == {site["site"] for site in quote.sites}
    assert set(SOME_SITES_PEAKS_READS[2].params) == {"start", "end", "site_0", "site_1"}


def test_an_admitted_contracts_sites_carry_their_code_and_name_and_read_the_rest_from_the_database(
    fleet, frozen, customer, django_assert_num_queries
):
    """Right after admission a contract's placements name their sites without a query (what the API shows), and
    any other field of such a site is the stored one, read when asked for, not a default made up in memory."""
    from sites.models import Site

    quote = create_quote(customer=customer, request=ask(fleet.premium, "100"))
    contract = create_contract_from_quote(quote=quote)

    placements = contract.placement_list
    with django_assert_num_queries(0):
        named = [(p.site.pk, p.site.code, p.site.name) for p in placements]
    assert named == [(s["site_id"], s["site"], s["name"]) for s in quote.sites] and len(named) >= 2
    stored = Site.objects.get(pk=placements[0].site_id)
    with django_assert_num_queries(1):  # a deferred field is loaded when read
        assert placements[0].site.latitude == stored.latitude
    assert placements[0].site.power_capacity_kw == stored.power_capacity_kw


def test_admissions_write_history_through_one_history_manager_per_process(fleet, frozen, customer, monkeypatch):
    """`Contract.history` builds a new manager class on every access (about 0.3 ms of CPU): admission must not
    pay it per contract, and still records who admitted the contract and why."""
    from simple_history.manager import HistoryDescriptor

    create_contract(customer=customer, request=ask(fleet.spot, "1"))  # the process's first admission builds it
    built = []
    original = HistoryDescriptor.__get__
    monkeypatch.setattr(HistoryDescriptor, "__get__", lambda self, *args: built.append(1) or original(self, *args))
    staff = UserFactory(is_staff=True)
    quote = create_quote(customer=customer, request=ask(fleet.standard, "10"))

    bought = create_contract_from_quote(quote=quote, actor=staff)
    placed_now = create_contract(customer=customer, request=ask(fleet.premium, "10"))

    assert built == []
    monkeypatch.undo()
    assert [(row.history_type, row.history_user, row.history_change_reason) for row in bought.history.all()] == [
        ("+", staff, f"admitted (quote {quote.pk})")
    ]
    assert placed_now.history.get().history_change_reason == "admitted (API request)"


def test_a_quote_whose_room_went_is_placed_again_under_the_locks(fleet, frozen, customer, outsider):
    quote = create_quote(customer=customer, request=ask(fleet.standard, "400"))
    create_contract(customer=outsider, request=ask(fleet.standard, "500"))  # oslo: 500 of 800 kW taken meanwhile

    contract = create_contract_from_quote(quote=quote)

    assert [site["site"] for site in quote.sites] == ["oslo"]
    assert placed(contract) == {"dublin": Decimal("400")}  # texas (cheaper) carries only 300 kW
    assert contract.quoted_total_usd == quote.total_usd
    assert Placement.objects.filter(contract__quote=quote).count() == 1
    assert contract.history.count() == 1
    assert all(peak <= limit for peak, limit in peaks().values())


def test_a_quote_whose_room_went_everywhere_is_refused_and_leaves_nothing(fleet, frozen, customer, outsider):
    quote = create_quote(customer=customer, request=ask(fleet.flexible, "400"))
    for kw in ("800", "500", "300"):
        create_contract(customer=outsider, request=ask(fleet.standard, kw))

    with pytest.raises(AdmissionRefused, match="Not enough free inference capacity"):
        create_contract_from_quote(quote=quote)

    assert not Contract.objects.filter(quote=quote).exists()
    assert Placement.objects.count() == 3 and Contract.history.count() == 3


def test_a_quote_whose_site_went_offline_is_placed_on_an_online_one(fleet, frozen, customer):
    quote = create_quote(customer=customer, request=ask(fleet.standard, "200"))
    fleet.oslo.status = SiteStatus.MAINTENANCE
    fleet.oslo.save()

    contract = create_contract_from_quote(quote=quote)

    assert [site["site"] for site in quote.sites] == ["oslo"]
    assert placed(contract) == {"texas": Decimal("200")}  # the cheapest online site with room


def test_a_firm_quote_whose_room_spot_took_meanwhile_displaces_the_spot(fleet, frozen, customer, outsider):
    fleet.dublin.delete(), fleet.texas.delete()
    quote = create_quote(customer=customer, request=ask(fleet.standard, "600"))
    spot = create_contract(customer=outsider, request=ask(fleet.spot, "500"))

    contract = create_contract_from_quote(quote=quote)

    assert placed(contract) == {"oslo": Decimal("600")}
    [notice] = PreemptionNotice.objects.all()
    assert (notice.contract_id, notice.displaced_by_id) == (spot.pk, contract.pk)
    assert peaks()["oslo"][0] == Decimal("600")


def test_expired_or_used_quote_is_refused(fleet, frozen, customer):
    used = create_quote(customer=customer, request=ask(fleet.standard, "80"))
    create_contract_from_quote(quote=used)
    expired = create_quote(customer=customer, request=ask(fleet.standard, "80"))

    with pytest.raises(QuoteUnavailable, match="already used"):
        create_contract_from_quote(quote=used)
    with time_machine.travel(T0 + timedelta(minutes=15), tick=False), pytest.raises(QuoteUnavailable, match="expired"):
        create_contract_from_quote(quote=expired)


def test_quote_with_no_room_is_refused_and_stores_nothing(fleet, frozen, customer):
    with pytest.raises(AdmissionRefused):
        create_quote(customer=customer, request=ask(fleet.standard, "5000"))


def test_future_contract_starts_and_ends_on_time_once(fleet, frozen, customer):
    contract = create_contract(customer=customer, request=ask(fleet.standard, "100", start=T0 + H, hours=2))
    unadmitted = ContractFactory(customer=customer, tier=fleet.standard, starts_at=T0, ends_at=T0 + 2 * H)
    assert contract.status == ContractStatus.REQUESTED

    with time_machine.travel(T0 + H, tick=False):
        assert start_contracts.apply().get() == {"started": 1}
        assert start_contracts.apply().get() == {"started": 0}
    with time_machine.travel(T0 + 3 * H, tick=False):
        assert expire_contracts.apply().get() == {"completed": 1}

    contract.refresh_from_db(), unadmitted.refresh_from_db()
    assert contract.status == ContractStatus.COMPLETED
    assert unadmitted.status == ContractStatus.REQUESTED  # never admitted: waits for staff
    assert [r.history_change_reason for r in contract.history.order_by("history_id")] == [
        "admitted (API request)",
        "contract window began",
        "contract window ended",
    ]


def test_cancelling_frees_the_capacity(fleet, frozen, customer):
    fleet.dublin.delete(), fleet.texas.delete()
    running = create_contract(customer=customer, request=ask(fleet.standard, "800", hours=4))
    with time_machine.travel(T0 + H, tick=False):
        cancel_contract(contract=running, actor=customer.user, reason="no longer needed")
        later = create_contract(customer=customer, request=ask(fleet.standard, "800", start=T0 + H, hours=2))

    assert later.status == ContractStatus.ACTIVE
    assert list(Placement.objects.filter(contract=running).values_list("valid_to", flat=True)) == [T0 + H]


def test_rejecting_an_admitted_request_frees_its_future_placements(fleet, frozen, customer):
    request = create_contract(customer=customer, request=ask(fleet.standard, "100", start=T0 + 5 * H))

    reject_contract(contract=request, actor=UserFactory(username="ops", is_staff=True), reason="credit check")

    assert not Placement.objects.filter(contract=request).exists()


def test_staff_typed_request_is_admitted_through_admission_control(fleet, frozen, customer):
    typed = ContractFactory(
        customer=customer, tier=fleet.premium, capacity_kw=Decimal("100"), starts_at=T0 - H, ends_at=T0 + 5 * H
    )

    admit_contract(contract=typed, actor=UserFactory(username="ops", is_staff=True))

    typed.refresh_from_db()
    assert typed.status == ContractStatus.ACTIVE and typed.admitted_at == T0
    assert typed.quoted_price_usd_per_kwh == Decimal("0.120000")  # its typed-in price is kept
    assert len(placed(typed)) == 2
    assert set(Placement.objects.filter(contract=typed).values_list("valid_from", flat=True)) == {T0}


def _buy_displacing_spot(fleet, customer, outsider, before_buying=lambda: None) -> dict:
    """A standard quote on oslo (the cheapest site), then Spot fills oslo (a running one, and a later one), then
    the quote is bought: what it placed and noticed, with the contracts named by role (ids differ per run)."""
    quote = create_quote(customer=customer, request=ask(fleet.standard, "600", start=T0 + 2 * H, hours=4))
    spot_now = create_contract(customer=outsider, request=ask(fleet.spot, "500", hours=6))
    spot_later = create_contract(customer=outsider, request=ask(fleet.spot, "300", start=T0 + 3 * H))
    assert [site["site"] for site in quote.sites] == ["oslo"] and placed(spot_now) == {"oslo": Decimal("500")}
    before_buying()
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):  # within the quote's 15 minutes
        contract = create_contract_from_quote(quote=quote)
    roles = {contract.pk: "bought", spot_now.pk: "spot_now", spot_later.pk: "spot_later"}
    return {
        "placements": sorted(
            (roles[p.contract_id], p.site.code, p.capacity_kw, p.valid_from, p.valid_to)
            for p in Placement.objects.filter(contract__in=roles).select_related("site")
        ),
        "notices": sorted(
            (
                roles[n.contract_id],
                n.site.code,
                n.capacity_kw,
                n.issued_at,
                n.effective_at,
                roles[n.displaced_by_id],
                n.reason.replace(str(contract.pk), "<bought>"),
            )
            for n in PreemptionNotice.objects.select_related("site")
        ),
    }


def test_a_firm_purchase_displaces_spot_under_its_plans_locks_as_a_fleet_wide_replan_would(
    fleet, frozen, customer, outsider, monkeypatch
):
    """A firm quote whose sites fit it in firm capacity but are full with Spot displaces that Spot on its own
    sites under the locks it holds: no rolled-back write, no replan under the locks of the whole fleet, and the
    same placements and notices as that replan made; no site is ever booked past its limit."""
    from django.db import transaction

    from sla.services import admission

    # The old path, for reference: the plan check refuses Spot's overflow and admission replans fleet-wide.
    def refuse(crowded, **_):
        raise admission._PlanNoLongerFits(crowded[0][0].code)

    with transaction.atomic():
        with monkeypatch.context() as patched:
            patched.setattr(admission, "_displace_on_plan", refuse, raising=False)
            replanned = _buy_displacing_spot(fleet, customer, outsider)
        transaction.set_rollback(True)
    assert not Contract.objects.exists()

    calls = []

    def spy():  # on the purchase only
        for name in ("_admit_once", "read_fleet", "load_bookings"):
            original = getattr(admission, name)
            monkeypatch.setattr(admission, name, lambda *a, _f=original, _n=name, **kw: calls.append((_n, kw))
                                or _f(*a, **kw))  # fmt: skip

    displaced = _buy_displacing_spot(fleet, customer, outsider, before_buying=spy)

    assert displaced == replanned
    assert [kind for kind, *_ in displaced["notices"]] == ["spot_later", "spot_now"]
    assert ("spot_now", "oslo", Decimal("500"), T0, T0 + 2 * H) in displaced["placements"]
    assert all(kind != "spot_later" for kind, *_ in displaced["placements"])  # it had not begun: dropped
    assert "_admit_once" not in [name for name, _ in calls]
    locked = [kw.get("only") for name, kw in calls if name == "read_fleet" and kw.get("lock")]
    read = [kw.get("only") for name, kw in calls if name == "load_bookings"]
    assert locked == [[fleet.oslo.pk]] and read == [[fleet.oslo.pk]]  # the plan's site only
    assert all(peak <= limit for peak, limit in peaks().values())
    assert peaks()["oslo"][0] == Decimal("600")  # Spot's 500 kW until the 600 kW firm begins


def test_a_spot_quote_on_a_site_full_with_spot_is_still_planned_again(fleet, frozen, customer, outsider):
    """Spot never displaces Spot: a Spot quote whose site filled with Spot meanwhile is planned again elsewhere."""
    quote = create_quote(customer=customer, request=ask(fleet.spot, "300"))
    assert [site["site"] for site in quote.sites] == ["oslo"]
    create_contract(customer=outsider, request=ask(fleet.spot, "800"))

    contract = create_contract_from_quote(quote=quote)

    assert placed(contract) == {"texas": Decimal("300")}
    assert not PreemptionNotice.objects.exists()
    assert all(peak <= limit for peak, limit in peaks().values())

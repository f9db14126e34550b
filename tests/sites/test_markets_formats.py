"""The operators' own formats to interval-start UTC, on both clock-change days of each market.

Files: tests/data/markets/ (README.md; build_fixtures.py writes them from the real tidy excerpts). The truth each
import is checked against is the tidy excerpt of the same real rows (timestamps already interval-start UTC).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from sites.markets.models import FxRate, PriceNode, SystemLoad
from sites.models import EnergyPrice
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[1] / "data" / "markets"
FIVE = timedelta(minutes=5)


def run(path, file_format, *args):
    out = io.StringIO()
    call_command("import_prices", str(path), "--format", file_format, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def tidy(name: str, column: str) -> dict[datetime, Decimal]:
    with (DATA / name).open() as handle:
        return {
            datetime.fromisoformat(row["timestamp_utc"].replace("Z", "+00:00")): Decimal(row[column])
            for row in csv.DictReader(handle)
            if row[column]
        }


def site_prices(site) -> dict[datetime, tuple[Decimal, Decimal, str]]:
    rows = EnergyPrice.objects.filter(site=site).values_list(
        "interval_start", "price_usd_per_mwh", "native_price_per_mwh", "native_currency"
    )
    return {start: (usd, native, currency) for start, usd, native, currency in rows}


def tied(market: str, node: str, currency: str, minutes: int):
    price_node = PriceNode.objects.create(market=market, node=node, currency=currency, resolution_minutes=minutes)
    return SiteFactory(price_node=price_node)


@pytest.fixture
def ecb_rates():
    call_command("import_fx_rates", "--since", "2022-03-01", stdout=io.StringIO())


def local_day_starts(prices, zone: str, day: str) -> list[datetime]:
    from zoneinfo import ZoneInfo

    return sorted(start for start in prices if start.astimezone(ZoneInfo(zone)).date().isoformat() == day)


# ERCOT: hour ending, Central Prevailing Time, DSTFlag.


def test_ercot_real_time_rows_land_on_the_tidy_utc_starts_on_both_change_days():
    site = tied("ercot", "HB_HUBAVG", "USD", 15)
    truth = tidy("ercot_rt15_hubavg_2024_dst_days.csv", "rt_spp_hb_hubavg_usd_per_mwh")

    out = run(DATA / "ercot_np6-905_hb_hubavg_2024_dst_days.csv", "ercot")

    prices = site_prices(site)
    assert "ERCOT HB_HUBAVG prices to 1 site(s): 576 new 5-minute prices" in out
    # 2024-03-10 has 23 hours in Texas (92 quarters), 2024-11-03 has 25 (100 quarters), each as 3 x 5 minutes.
    assert len(local_day_starts(prices, "America/Chicago", "2024-03-10")) == 92 * 3
    assert len(local_day_starts(prices, "America/Chicago", "2024-11-03")) == 100 * 3
    for start, (usd, native, currency) in prices.items():
        quarter = start - timedelta(minutes=start.minute % 15)
        assert usd == native == truth[quarter]
        assert currency == "USD"
    # The repeated hour: 01:00 CDT (06:00Z) and 01:00 CST (07:00Z, DSTFlag Y) are both kept, apart.
    assert prices[datetime(2024, 11, 3, 6, 0, tzinfo=UTC)][0] == Decimal("18.72")
    assert prices[datetime(2024, 11, 3, 7, 0, tzinfo=UTC)][0] == Decimal("26.56")


def test_ercot_hour_ending_3_on_the_spring_day_does_not_exist(tmp_path):
    tied("ercot", "HB_HUBAVG", "USD", 15)
    lines = (DATA / "ercot_np6-905_hb_hubavg_2024_dst_days.csv").read_text().splitlines()
    lines[9] = "03/10/2024,3,1,HB_HUBAVG,SH,20.00,N"
    path = tmp_path / "rt.csv"
    path.write_text("\n".join(lines) + "\n")

    with pytest.raises(CommandError, match=r"line 10: hour ending 2024-03-10 02:00 does not exist in America/Chicago"):
        run(path, "ercot")

    assert not EnergyPrice.objects.exists()


def test_ercot_dst_flag_y_outside_the_repeated_hour_is_refused(tmp_path):
    tied("ercot", "HB_HUBAVG", "USD", 15)
    path = tmp_path / "rt.csv"
    header = (DATA / "ercot_np6-905_hb_hubavg_2024_dst_days.csv").read_text().splitlines()[0]
    path.write_text(header + "\n11/03/2024,5,1,HB_HUBAVG,SH,20.00,Y\n")

    with pytest.raises(CommandError, match=r"line 2: DSTFlag Y on 2024-11-03 04:00, which is not the repeated"):
        run(path, "ercot")


def test_ercot_day_ahead_file_with_several_points_needs_a_node():
    tied("ercot", "HB_HUBAVG", "USD", 60)

    with pytest.raises(CommandError, match=r"2 settlement points; name one with --node"):
        run(DATA / "ercot_np4-190_dam_spp_2024-11-03.csv", "ercot")


def test_ercot_day_ahead_hour_ending_rows_hold_25_hours_on_the_autumn_day():
    site = tied("ercot", "HB_HUBAVG", "USD", 60)
    truth = tidy("ercot_da_hubavg_load_forecast_2024-11-03.csv", "da_spp_hb_hubavg_usd_per_mwh")

    run(DATA / "ercot_np4-190_dam_spp_2024-11-03.csv", "ercot", "--node", "HB_HUBAVG")

    prices = site_prices(site)
    assert len(prices) == 25 * 12
    assert all(usd == truth[start.replace(minute=0)] for start, (usd, _, _) in prices.items())
    assert min(prices) == datetime(2024, 11, 3, 5, 0, tzinfo=UTC)  # hour ending 01:00 CDT starts 00:00 CDT


def test_importing_again_adds_nothing():
    tied("ercot", "HB_HUBAVG", "USD", 15)
    run(DATA / "ercot_np6-905_hb_hubavg_2024_dst_days.csv", "ercot")

    out = run(DATA / "ercot_np6-905_hb_hubavg_2024_dst_days.csv", "ercot")

    assert "0 new 5-minute prices, 576 already present" in out


# ENTSO-E: the Transparency export (CET/CEST) and the API's XML (UTC).


def test_entsoe_export_converts_cet_cest_and_euros_through_the_stored_daily_rate(ecb_rates):
    site = tied("entsoe", "DE-LU", "EUR", 60)
    truth = tidy("entsoe_de_lu_2024-03-31.csv", "da_price_de_lu_eur_per_mwh")

    run(DATA / "entsoe_export_de_lu_2024_dst_days.csv", "entsoe")

    prices = site_prices(site)
    assert len(local_day_starts(prices, "Europe/Berlin", "2024-03-31")) == 23 * 12
    assert len(local_day_starts(prices, "Europe/Berlin", "2024-10-27")) == 25 * 12
    friday = FxRate.objects.get(currency="EUR", day="2024-03-28").usd_per_unit  # Easter: no ECB rate 29th-31st
    for start in local_day_starts(prices, "Europe/Berlin", "2024-03-31"):
        usd, native, currency = prices[start]
        assert (native, currency) == (truth[start.replace(minute=0)], "EUR")
        assert usd == (native * friday).quantize(Decimal("0.01"))
    # 02:00-03:00 twice on 2024-10-27: CEST (00:00Z) then CET (01:00Z).
    assert prices[datetime(2024, 10, 27, 0, 0, tzinfo=UTC)][1] == Decimal("64.98")
    assert prices[datetime(2024, 10, 27, 1, 0, tzinfo=UTC)][1] == Decimal("60.48")


def test_entsoe_prices_without_a_stored_fx_rate_are_refused_and_nothing_is_stored():
    tied("entsoe", "DE-LU", "EUR", 60)

    with pytest.raises(
        CommandError, match=r"No EUR->USD rate stored for 4 day\(s\) \(2024-03-30, 2024-03-31, 2024-10-26, 2024-10-27\)"
    ):
        run(DATA / "entsoe_export_de_lu_2024_dst_days.csv", "entsoe")

    assert not EnergyPrice.objects.exists()


def test_entsoe_xml_fills_the_a03_curve_and_matches_the_export(ecb_rates):
    site = tied("entsoe", "DE-LU", "EUR", 60)
    truth = tidy("entsoe_de_lu_2024-03-31.csv", "da_price_de_lu_eur_per_mwh")

    out = run(DATA / "entsoe_a44_de_lu_2024-03-31.xml", "entsoe-xml")

    prices = site_prices(site)
    assert "ENTSOE DE-LU prices" in out
    assert len(prices) == 23 * 12
    assert all(native == truth[start.replace(minute=0)] for start, (_, native, _) in prices.items())


def test_entsoe_xml_acknowledgement_is_refused_with_its_reason(tmp_path):
    path = tmp_path / "ack.xml"
    path.write_text(
        '<Acknowledgement_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-1:acknowledgementdocument:7:0">'
        "<Reason><code>999</code><text>No matching data found</text></Reason></Acknowledgement_MarketDocument>"
    )

    with pytest.raises(CommandError, match="not a Publication_MarketDocument: No matching data found"):
        run(path, "entsoe-xml")


# AEMO: interval end, fixed UTC+10 all year.


def test_aemo_settlement_dates_are_interval_ends_in_utc_plus_10_on_both_nsw_change_days(ecb_rates):
    site = tied("aemo", "NSW1", "AUD", 5)
    truth = tidy("aemo_nsw1_2022-09-01.csv", "rrp_nsw1_aud_per_mwh")

    out = run(DATA / "aemo_price_and_demand_nsw1.csv", "aemo")

    prices = site_prices(site)
    assert "AEMO NSW1 actual load: 90 new" in out
    for start, price in truth.items():
        assert prices[start][1] == price  # 2022/09/01 10:05 AEST ends the interval starting 00:00Z
    # NSW's clocks change, the market's does not: 5-minute steps without a gap or repeat through both changes.
    for change in (datetime(2022, 4, 2, 14, tzinfo=UTC), datetime(2022, 10, 1, 14, tzinfo=UTC)):
        starts = sorted(start for start in prices if change <= start < change + timedelta(hours=3))
        assert starts == [change + FIVE * k for k in range(30)]
    assert SystemLoad.objects.get(
        market="aemo", zone="NSW1", interval_start=datetime(2022, 9, 1, tzinfo=UTC)
    ).load_mw == Decimal("6938.02")


def test_the_ecb_history_imports_once():
    out = io.StringIO()
    call_command("import_fx_rates", "--since", "2024-01-01", stdout=out)
    first = FxRate.objects.count()
    call_command("import_fx_rates", "--since", "2024-01-01", stdout=out)

    assert FxRate.objects.count() == first
    assert "0 new" in out.getvalue().splitlines()[-1]
    assert FxRate.objects.get(currency="EUR", day="2024-01-02").usd_per_unit == Decimal("1.095600")


def test_a_bad_fx_row_rejects_the_file(tmp_path):
    path = tmp_path / "fx.csv"
    path.write_text("day,currency,usd_per_unit\n2024-01-02,EUR,1.09\n2024-01-03,EUR,-1\n")

    with pytest.raises(CommandError, match=r"line 3: usd_per_unit '-1' is not a positive number"):
        call_command("import_fx_rates", str(path), "--format", "tidy", stdout=io.StringIO())

    assert not FxRate.objects.exists()

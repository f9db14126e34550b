"""Writes the operator-format test files of this folder from the tidy excerpts beside it (run once; outputs committed).

    .venv/bin/python tests/data/markets/build_fixtures.py

Each file is in the market's own published layout and clock (hour-ending Central Prevailing Time with DSTFlag for
ERCOT, CET/CEST MTU for the ENTSO-E export, UTC periods for the ENTSO-E XML, interval-end UTC+10 for AEMO); the
values are the real ones of the tidy excerpts. Where the shared data has no real day for a clock change (DE-LU
in October 2024, AEMO in April and October 2022), the rows are marked SYNTHETIC in README.md: the format and the
clock are real, the values are the nearest real day's, shifted in time.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
CHICAGO, BRUSSELS = ZoneInfo("America/Chicago"), ZoneInfo("Europe/Brussels")


def tidy(name: str, column: str) -> list[tuple[datetime, str]]:
    with (HERE / name).open() as handle:
        return [
            (datetime.fromisoformat(row["timestamp_utc"].replace("Z", "+00:00")), row[column])
            for row in csv.DictReader(handle)
            if row[column]
        ]


def ercot_local(start: datetime, minutes: int) -> tuple[str, int, int, str]:
    """(DeliveryDate, hour ending, quarter 1..4, DSTFlag) of an interval start, as ERCOT publishes it."""
    local = start.astimezone(CHICAGO)
    repeated = local.replace(fold=0).utcoffset() != local.utcoffset()  # the second pass of the autumn hour
    quarter = local.minute // minutes + 1 if minutes < 60 else 0
    return local.strftime("%m/%d/%Y"), local.hour + 1, quarter, "Y" if repeated else "N"


def write_ercot_rt() -> None:
    rows = tidy("ercot_rt15_hubavg_2024_dst_days.csv", "rt_spp_hb_hubavg_usd_per_mwh")
    with (HERE / "ercot_np6-905_hb_hubavg_2024_dst_days.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["DeliveryDate", "DeliveryHour", "DeliveryInterval", "SettlementPointName",
                      "SettlementPointType", "SettlementPointPrice", "DSTFlag"])  # fmt: skip
        for start, price in rows:
            day, hour, quarter, flag = ercot_local(start, 15)
            if day in ("03/10/2024", "11/03/2024"):
                out.writerow([day, f"{hour}", f"{quarter}", "HB_HUBAVG", "SH", price, flag])


def write_ercot_dam() -> None:
    rows = tidy("ercot_da_hubavg_load_forecast_2024-11-03.csv", "da_spp_hb_hubavg_usd_per_mwh")
    hubs = tidy("ercot_hubs_as_2024_dst_days.csv", "da_spp_hb_north_usd_per_mwh")
    with (HERE / "ercot_np4-190_dam_spp_2024-11-03.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["DeliveryDate", "HourEnding", "SettlementPoint", "SettlementPointPrice", "DSTFlag"])
        for name, series in (("HB_HUBAVG", rows), ("HB_NORTH", hubs)):
            for start, price in series:
                day, hour, _, flag = ercot_local(start, 60)
                if day == "11/03/2024":
                    out.writerow([day, f"{hour:02d}:00", name, price, flag])


def mtu(start: datetime, minutes: int, *, suffix: bool) -> str:
    local = start.astimezone(BRUSSELS)
    end = local.replace(tzinfo=None) + timedelta(minutes=minutes)  # the export's end is wall time + the MTU
    ambiguous = local.replace(fold=1).utcoffset() != local.replace(fold=0).utcoffset()
    label = f" ({local.tzname()})" if suffix and ambiguous else ""
    return f"{local:%d.%m.%Y %H:%M} - {end:%d.%m.%Y %H:%M}{label}"


def write_entsoe() -> None:
    rows = tidy("entsoe_de_lu_2024-03-31.csv", "da_price_de_lu_eur_per_mwh")
    spring = [(s, p) for s, p in rows if s.astimezone(BRUSSELS).date().isoformat() == "2024-03-31"]
    # SYNTHETIC values: the 2024-10-27 clock change is outside the shared file (H1 2024); 2024-03-31's prices are
    # laid on its 25 hours (the 24th repeated) so the format and clock can be tested.
    autumn_starts = [datetime(2024, 10, 26, 22, tzinfo=UTC) + timedelta(hours=h) for h in range(25)]
    autumn = [(s, spring[min(i, len(spring) - 1)][1]) for i, s in enumerate(autumn_starts)]
    header = ["MTU (CET/CEST)", "Day-ahead Price [EUR/MWh]", "Currency", "BZN|DE-LU"]
    with (HERE / "entsoe_export_de_lu_2024_dst_days.csv").open("w", newline="") as handle:
        out = csv.writer(handle, quoting=csv.QUOTE_ALL)
        out.writerow(header)
        for start, price in spring:
            if start.astimezone(BRUSSELS).hour == 3:  # the export lists the skipped hour, without a price
                out.writerow(["31.03.2024 02:00 - 31.03.2024 03:00", "-", "EUR", ""])
            out.writerow([mtu(start, 60, suffix=False), price, "EUR", ""])
        for start, price in autumn:
            out.writerow([mtu(start, 60, suffix=True), price, "EUR", ""])


def write_entsoe_xml() -> None:
    rows = tidy("entsoe_de_lu_2024-03-31.csv", "da_price_de_lu_eur_per_mwh")
    start = datetime(2024, 3, 30, 23, tzinfo=UTC)
    day = [p for s, p in rows if start <= s < start + timedelta(hours=23)]
    points, previous = [], None
    for position, price in enumerate(day, start=1):
        if price != previous:  # curve type A03: a position repeating the previous price is left out
            points.append(f"<Point><position>{position}</position><price.amount>{price}</price.amount></Point>")
        previous = price
    text = f"""<?xml version="1.0" encoding="utf-8"?>
<Publication_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3">
  <mRID>fixture-de-lu-2024-03-31</mRID>
  <type>A44</type>
  <period.timeInterval><start>2024-03-30T23:00Z</start><end>2024-03-31T22:00Z</end></period.timeInterval>
  <TimeSeries>
    <mRID>1</mRID>
    <auction.type>A01</auction.type>
    <businessType>A62</businessType>
    <in_Domain.mRID codingScheme="A01">10Y1001A1001A82H</in_Domain.mRID>
    <out_Domain.mRID codingScheme="A01">10Y1001A1001A82H</out_Domain.mRID>
    <contract_MarketAgreement.type>A01</contract_MarketAgreement.type>
    <currency_Unit.name>EUR</currency_Unit.name>
    <price_Measure_Unit.name>MWH</price_Measure_Unit.name>
    <curveType>A03</curveType>
    <Period>
      <timeInterval><start>2024-03-30T23:00Z</start><end>2024-03-31T22:00Z</end></timeInterval>
      <resolution>PT60M</resolution>
      {"".join(points)}
    </Period>
  </TimeSeries>
</Publication_MarketDocument>
"""
    (HERE / "entsoe_a44_de_lu_2024-03-31.xml").write_text(text)


def write_aemo() -> None:
    rrp = tidy("aemo_nsw1_2022-09-01.csv", "rrp_nsw1_aud_per_mwh")
    demand = dict(tidy("aemo_nsw1_2022-09-01.csv", "total_demand_nsw1_mw"))
    with (HERE / "aemo_price_and_demand_nsw1.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["REGION", "SETTLEMENTDATE", "TOTALDEMAND", "RRP", "PERIODTYPE"])
        # The real rows, then SYNTHETIC ones on NSW's clock-change days (2022-04-03, 2022-10-02: the market's
        # clock stays UTC+10), carrying the real rows' values.
        shifts = (timedelta(0), datetime(2022, 4, 2, 14, tzinfo=UTC) - rrp[0][0],
                  datetime(2022, 10, 1, 14, tzinfo=UTC) - rrp[0][0])  # fmt: skip
        for shift in shifts:
            for start, price in rrp:
                end = start + shift + timedelta(minutes=5) + timedelta(hours=10)
                out.writerow(["NSW1", f"{end:%Y/%m/%d %H:%M:%S}", demand[start], price, "TRADE"])


if __name__ == "__main__":
    write_ercot_rt()
    write_ercot_dam()
    write_entsoe()
    write_entsoe_xml()
    write_aemo()

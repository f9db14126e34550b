"""Readers of the real market formats: every time convention to interval-start UTC (no Django, no database).

Each reader takes the rows of a file, ``(line number, {column: text})``, and returns a ``MarketFile``: series of
``Point`` (interval start in UTC, interval length, value as quoted) keyed by ``SeriesKey``, and the bad lines with
their reasons. What each format's clock means:

- ``tidy`` (the files of /work/shared/data/real/): ``timestamp_utc`` is already the interval start in UTC; the
  resolution is the most common step between rows. Columns are recognised by name (``COLUMN_KINDS``).
- ``ercot`` (ERCOT MIS settlement point prices): ``DeliveryDate`` (MM/DD/YYYY), ``DeliveryHour`` (hour ending,
  1..24) and ``DeliveryInterval`` (1..4 quarter of that hour; absent in hourly files) in Central Prevailing Time.
  The autumn's repeated hour comes twice, the second time with ``DSTFlag`` = Y (standard time); the spring's
  missing hour (hour ending 3) never comes and a row for it is refused.
- ``entsoe`` (Transparency Platform export): ``MTU (CET/CEST)`` is ``start - end`` in Europe/Brussels wall time,
  ``DD.MM.YYYY HH:MM`` or ``DD/MM/YYYY HH:MM:SS``; the autumn's repeated hour is told apart by a ``(CEST)`` /
  ``(CET)`` suffix or, without one, by order (first = summer time). The spring's missing hour may appear with no
  value and is skipped; with a value it is refused.
- ``entsoe-xml`` (the API's Publication_MarketDocument): ``timeInterval`` and positions are UTC already; curve type
  A03 leaves out positions whose value repeats the previous one, which are filled back in.
- ``aemo`` (PRICE_AND_DEMAND): ``SETTLEMENTDATE`` (YYYY/MM/DD HH:MM:SS) is the interval's **end** in market time,
  fixed UTC+10 all year (no daylight saving); the interval is 5 minutes (30 before October 2021, inferred from
  the step between rows).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from zoneinfo import ZoneInfo

from ..clients.parsing import parse_timestamp
from .choices import SYSTEM_ZONE, LoadKind, Market

ERCOT_TIME = ZoneInfo("America/Chicago")
ENTSOE_TIME = ZoneInfo("Europe/Brussels")
AEMO_TIME_OFFSET = timedelta(hours=10)
EMPTY = ("", "-", "n/e", "N/A")

Rows = Iterable[tuple[int, Mapping[str, str]]]


class RowError(Exception):
    """One line of a file is invalid; the message says why."""


@dataclass(frozen=True)
class SeriesKey:
    """What a series is: ``kind`` price (``name`` = node, per MWh in ``unit``), ancillary (``name`` = service, USD
    per MW-hour) or load (``name`` = zone, MW, ``load_kind`` actual or forecast)."""

    kind: str
    market: str
    name: str
    unit: str = "USD"
    load_kind: str = LoadKind.ACTUAL
    column: str = ""

    def describe(self) -> str:
        what = {"price": "prices", "ancillary": "ancillary prices", "load": f"{self.load_kind} load"}[self.kind]
        return f"{self.market.upper()} {self.name} {what}"


@dataclass(frozen=True)
class Point:
    start: datetime
    minutes: int
    value: Decimal
    line: int


@dataclass
class MarketFile:
    series: dict[SeriesKey, list[Point]] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)
    skipped_columns: list[str] = field(default_factory=list)

    def add(self, key: SeriesKey, point: Point) -> None:
        self.series.setdefault(key, []).append(point)


def number(text: str | None, column: str) -> Decimal | None:
    """The cell's value, None when empty (the source had none)."""
    text = (text or "").strip()
    if text in EMPTY:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RowError(f"{column} {text!r} is not a number") from None
    if not value.is_finite():
        raise RowError(f"{column} {text!r} is not a finite number")
    return value


def surplus_count(raw: Mapping[str, str]) -> int:
    """How many values a csv.DictReader row has beyond its header (it puts them, as a list, under the key None)."""
    if None not in raw:
        return 0
    return len(raw[None])  # type: ignore[index]  # the key None lies outside the declared str keys of a row


def collect(rows: Rows, parse_row, result: MarketFile) -> MarketFile:
    for line, raw in rows:
        try:
            if extra := surplus_count(raw):
                raise RowError(f"{len(raw) - 1 + extra} values for {len(raw) - 1} columns")
            parse_row(line, raw)
        except RowError as exc:
            result.errors.append((line, str(exc)))
    return result


def check_repeats(result: MarketFile) -> MarketFile:
    """A series may hold each interval once: a repeat is an error naming both lines."""
    for key, points in result.series.items():
        seen: dict[datetime, int] = {}
        for point in points:
            if point.start in seen:
                result.errors.append(
                    (point.line, f"{key.describe()} at {point.start.isoformat()} repeats line {seen[point.start]}")
                )
            else:
                seen[point.start] = point.line
    result.errors.sort()
    return result


def common_step_minutes(starts: Iterable[datetime], default: int) -> int:
    ordered = sorted(set(starts))
    steps = Counter(int((b - a).total_seconds() // 60) for a, b in pairwise(ordered))
    return steps.most_common(1)[0][0] if steps else default


def with_minutes(result: MarketFile, minutes_of: dict[SeriesKey, int]) -> MarketFile:
    for key, points in result.series.items():
        result.series[key] = [Point(p.start, minutes_of[key], p.value, p.line) for p in points]
    return result


def local_to_utc(wall: datetime, zone: ZoneInfo, *, fold: int, what: str) -> datetime:
    """A wall-clock time of ``zone`` in UTC; refuses a time the clock skipped (the spring change)."""
    aware = wall.replace(tzinfo=zone, fold=fold)
    utc = aware.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != wall:
        raise RowError(f"{what} {wall:%Y-%m-%d %H:%M} does not exist in {zone.key} (the clock skipped it)")
    return utc


# tidy

COLUMN_KINDS: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"^as_mcpc_(?P<name>[A-Z]+)_usd_per_mw_h$"), "ancillary"),
    (re.compile(r"^dam_system_load_forecast_mw$"), "ercot_forecast"),
    (re.compile(r"^load_(?P<name>[a-z]+)_mw$"), "ercot_load"),
    (re.compile(r"^total_demand_(?P<name>[a-z]+[0-9])_mw$"), "aemo_load"),
    (re.compile(r"^(?P<name>.+)_(?P<unit>usd|eur|aud)_per_mwh$"), "price"),
)
PRICE_MARKET_HINTS = (("rrp_", Market.AEMO), ("da_price_", Market.ENTSOE), ("", Market.ERCOT))


def tidy_key(column: str) -> SeriesKey | None:
    """The series a tidy column holds (price columns get their node from the importer), or None if unknown."""
    for pattern, kind in COLUMN_KINDS:
        match = pattern.match(column)
        if not match:
            continue
        if kind == "ancillary":
            return SeriesKey("ancillary", Market.ERCOT, match["name"], column=column)
        if kind == "ercot_forecast":
            return SeriesKey("load", Market.ERCOT, SYSTEM_ZONE, "MW", LoadKind.FORECAST, column=column)
        if kind == "ercot_load":
            zone = SYSTEM_ZONE if match["name"] == "ercot" else match["name"].upper()
            return SeriesKey("load", Market.ERCOT, zone, "MW", column=column)
        if kind == "aemo_load":
            return SeriesKey("load", Market.AEMO, match["name"].upper(), "MW", column=column)
        market = next(m for prefix, m in PRICE_MARKET_HINTS if column.startswith(prefix))
        return SeriesKey("price", market, "", match["unit"].upper(), column=column)
    return None


def read_tidy(rows: Rows, columns: Mapping[str, SeriesKey]) -> MarketFile:
    """``timestamp_utc`` and the given columns (column -> series); empty cells are intervals without a value."""
    result = MarketFile()

    def parse_row(line: int, raw: Mapping[str, str]) -> None:
        try:
            start = parse_timestamp(raw.get("timestamp_utc") or "", field="timestamp_utc", naive_is_utc=False)
        except Exception as exc:  # SourceDataError
            raise RowError(getattr(exc, "message", str(exc))) from None
        for column, key in columns.items():
            value = number(raw.get(column), column)
            if value is not None:
                result.add(key, Point(start, 0, value, line))

    collect(rows, parse_row, result)
    minutes = {key: common_step_minutes((p.start for p in points), 60) for key, points in result.series.items()}
    return check_repeats(with_minutes(result, minutes))


# ERCOT MIS

ERCOT_COLUMNS = ("DeliveryDate", "DeliveryHour", "SettlementPointName", "SettlementPointPrice")
# The day-ahead files (NP4-190) name two of them differently: HourEnding "01:00", SettlementPoint.
ERCOT_ALIASES = {"HourEnding": "DeliveryHour", "SettlementPoint": "SettlementPointName"}


def ercot_header(header: Iterable[str]) -> list[str]:
    return [ERCOT_ALIASES.get(name, name) for name in header]


def ercot_start(raw: Mapping[str, str]) -> tuple[datetime, int]:
    """Interval start (UTC) and minutes of an ERCOT row, from hour-ending Central Prevailing Time."""
    try:
        day = datetime.strptime(raw["DeliveryDate"].strip(), "%m/%d/%Y")
    except ValueError:
        raise RowError(f"DeliveryDate {raw['DeliveryDate']!r} is not MM/DD/YYYY") from None
    hour_text = raw["DeliveryHour"].strip()
    hour_text = hour_text.split(":")[0] if ":" in hour_text else hour_text  # "01:00" in the DAM files
    if not hour_text.isdigit() or not 1 <= int(hour_text) <= 24:
        raise RowError(f"DeliveryHour {raw['DeliveryHour']!r} is not an hour ending 1..24")
    quarter_text = (raw.get("DeliveryInterval") or "").strip()
    if quarter_text and (not quarter_text.isdigit() or not 1 <= int(quarter_text) <= 4):
        raise RowError(f"DeliveryInterval {quarter_text!r} is not 1..4")
    flag = (raw.get("DSTFlag") or "N").strip().upper()
    if flag not in ("Y", "N"):
        raise RowError(f"DSTFlag {flag!r} is not Y or N")
    minutes = 15 if quarter_text else 60
    offset = timedelta(hours=int(hour_text) - 1, minutes=15 * (int(quarter_text) - 1) if quarter_text else 0)
    wall = day + offset
    fold = 1 if flag == "Y" else 0
    start = local_to_utc(wall, ERCOT_TIME, fold=fold, what="hour ending")
    if flag == "Y" and wall.replace(tzinfo=ERCOT_TIME, fold=0).utcoffset() == start.astimezone(ERCOT_TIME).utcoffset():
        raise RowError(f"DSTFlag Y on {wall:%Y-%m-%d %H:%M}, which is not the repeated autumn hour")
    return start, minutes


def read_ercot(rows: Rows, node: str | None) -> MarketFile:
    result = MarketFile()
    names: set[str] = set()

    def parse_row(line: int, raw: Mapping[str, str]) -> None:
        raw = {ERCOT_ALIASES.get(column, column): value for column, value in raw.items()}
        name = (raw.get("SettlementPointName") or "").strip()
        names.add(name)
        if node and name != node:
            return
        start, minutes = ercot_start(raw)
        value = number(raw.get("SettlementPointPrice"), "SettlementPointPrice")
        if value is None:
            raise RowError("missing SettlementPointPrice")
        result.add(SeriesKey("price", Market.ERCOT, name, "USD"), Point(start, minutes, value, line))

    collect(rows, parse_row, result)
    if not node and len(names) > 1:
        raise RowError(
            f"the file holds {len(names)} settlement points; name one with --node ({', '.join(sorted(names)[:8])}...)"
        )
    return check_repeats(result)


# ENTSO-E Transparency export

MTU = re.compile(
    r"^\s*(?P<start>\d{2}[./]\d{2}[./]\d{4} \d{2}:\d{2}(?::\d{2})?)\s*(?:\((?P<start_zone>CES?T)\))?\s*-\s*"
    r"(?P<end>\d{2}[./]\d{2}[./]\d{4} \d{2}:\d{2}(?::\d{2})?)\s*(?:\((?P<zone>CES?T)\))?\s*$"
)


def entsoe_wall(text: str) -> datetime:
    text = text.replace("/", ".")
    return datetime.strptime(text, "%d.%m.%Y %H:%M:%S" if text.count(":") == 2 else "%d.%m.%Y %H:%M")


def entsoe_columns(header: Iterable[str]) -> tuple[str, str, str, str]:
    """(MTU column, price column, currency, zone or '') of an ENTSO-E export header."""
    header = list(header)
    mtu = next((name for name in header if name.startswith("MTU")), None)
    price = next((name for name in header if name.lower().startswith("day-ahead price")), None)
    if not mtu or not price:
        raise RowError('expected the columns "MTU (CET/CEST)" and "Day-ahead Price [EUR/MWh]"')
    currency = re.search(r"[\[(]([A-Z]{3})/MWh[\])]", price)
    zone = next((name.split("|", 1)[1].strip() for name in header if name.startswith("BZN|")), "")
    return mtu, price, currency[1] if currency else "EUR", zone


def read_entsoe(rows: Rows, header: Iterable[str], node: str | None) -> MarketFile:
    mtu, price, currency, zone = entsoe_columns(header)
    zone = node or zone
    if not zone:
        raise RowError("the export names no bidding zone (no BZN| column): give it with --node, e.g. DE-LU")
    key = SeriesKey("price", Market.ENTSOE, zone, currency)
    result = MarketFile()
    seen_wall: set[datetime] = set()

    def parse_row(line: int, raw: Mapping[str, str]) -> None:
        match = MTU.match(raw.get(mtu) or "")
        if not match:
            raise RowError(f"{mtu} {raw.get(mtu)!r} is not 'DD.MM.YYYY HH:MM - DD.MM.YYYY HH:MM'")
        start_wall, end_wall = entsoe_wall(match["start"]), entsoe_wall(match["end"])
        label = match["start_zone"] or match["zone"]
        fold = {"CEST": 0, "CET": 1}.get(label or "", 1 if start_wall in seen_wall else 0)
        seen_wall.add(start_wall)
        value = number(raw.get(price), price)
        try:
            start = local_to_utc(start_wall, ENTSOE_TIME, fold=fold, what="MTU start")
        except RowError:
            if value is None:
                return  # the export lists the skipped spring hour without a price
            raise
        minutes = int((end_wall - start_wall).total_seconds() // 60)  # wall length: right on both change days
        if minutes not in (15, 30, 60):
            raise RowError(f"{mtu} {raw.get(mtu)!r} is {minutes} minutes long, not 15, 30 or 60")
        if value is not None:
            result.add(key, Point(start, minutes, value, line))

    collect(rows, parse_row, result)
    return check_repeats(result)


# ENTSO-E API XML (Publication_MarketDocument, document type A44)

RESOLUTION_MINUTES = {"PT15M": 15, "PT30M": 30, "PT60M": 60, "P1D": 1440}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((child for child in element if _local(child.tag) == name), None)


def _text(element: ET.Element, path: str) -> str:
    node: ET.Element | None = element
    for name in path.split("/"):
        node = _child(node, name) if node is not None else None
    if node is None or node.text is None:
        raise RowError(f"missing {path}")
    return node.text.strip()


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)


def read_entsoe_xml(text: str, node: str | None, zones: Mapping[str, str]) -> MarketFile:
    """Prices of every TimeSeries; ``zones`` maps an EIC code (10Y1001A1001A82H) to a zone name (DE-LU)."""
    result = MarketFile()
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        result.errors.append((exc.position[0], f"not well-formed XML ({exc})"))
        return result
    if _local(root.tag) != "Publication_MarketDocument":
        reason = _text(root, "Reason/text") if _local(root.tag) == "Acknowledgement_MarketDocument" else root.tag
        result.errors.append((1, f"not a Publication_MarketDocument: {reason}"))
        return result
    for number_, series in enumerate((c for c in root if _local(c.tag) == "TimeSeries"), start=1):
        try:
            _read_xml_series(series, node, zones, result)
        except (RowError, ValueError) as exc:
            result.errors.append((number_, f"TimeSeries {number_}: {exc}"))
    return check_repeats(result)


def _read_xml_series(series: ET.Element, node: str | None, zones: Mapping[str, str], result: MarketFile) -> None:
    eic = _text(series, "in_Domain.mRID")
    zone = zones.get(eic, eic)
    if node and node not in (zone, eic):
        return
    currency = _text(series, "currency_Unit.name")
    curve_type = _child(series, "curveType")
    curve = (curve_type.text or "A01").strip() if curve_type is not None else "A01"
    key = SeriesKey("price", Market.ENTSOE, zone, currency)
    for period in (c for c in series if _local(c.tag) == "Period"):
        start, end = _utc(_text(period, "timeInterval/start")), _utc(_text(period, "timeInterval/end"))
        resolution = _text(period, "resolution")
        if resolution not in RESOLUTION_MINUTES:
            raise RowError(f"unknown resolution {resolution!r}")
        minutes = RESOLUTION_MINUTES[resolution]
        count = int((end - start).total_seconds() // 60 // minutes)
        values: dict[int, Decimal | None] = {}  # None: the point's amount is empty
        for point in (c for c in period if _local(c.tag) == "Point"):
            position = int(_text(point, "position"))
            if not 1 <= position <= count:
                raise RowError(f"position {position} outside 1..{count}")
            values[position] = number(_text(point, "price.amount"), "price.amount")
        last: Decimal | None = None
        for position in range(1, count + 1):
            last = values.get(position, last if curve == "A03" else None)
            if last is not None:
                result.add(key, Point(start + timedelta(minutes=minutes * (position - 1)), minutes, last, position))


# AEMO PRICE_AND_DEMAND

AEMO_COLUMNS = ("REGION", "SETTLEMENTDATE", "TOTALDEMAND", "RRP")


def aemo_end(text: str) -> datetime:
    try:
        wall = datetime.strptime(text.strip(), "%Y/%m/%d %H:%M:%S")
    except ValueError:
        try:
            wall = datetime.strptime(text.strip(), "%Y/%m/%d %H:%M")
        except ValueError:
            raise RowError(f"SETTLEMENTDATE {text!r} is not YYYY/MM/DD HH:MM:SS") from None
    return (wall - AEMO_TIME_OFFSET).replace(tzinfo=UTC)


def read_aemo(rows: Rows, node: str | None) -> MarketFile:
    """RRP (AUD/MWh) as the region's prices and TOTALDEMAND (MW) as its load; ends shifted to starts."""
    result = MarketFile()
    ends: dict[SeriesKey, list[tuple[datetime, Decimal, int]]] = {}

    def parse_row(line: int, raw: Mapping[str, str]) -> None:
        region = (raw.get("REGION") or "").strip()
        if not region:
            raise RowError("missing REGION")
        if node and region != node:
            return
        end = aemo_end(raw.get("SETTLEMENTDATE") or "")
        price, demand = number(raw.get("RRP"), "RRP"), number(raw.get("TOTALDEMAND"), "TOTALDEMAND")
        if price is not None:
            ends.setdefault(SeriesKey("price", Market.AEMO, region, "AUD"), []).append((end, price, line))
        if demand is not None:
            ends.setdefault(SeriesKey("load", Market.AEMO, region, "MW"), []).append((end, demand, line))

    collect(rows, parse_row, result)
    for key, points in ends.items():
        minutes = common_step_minutes((end for end, _, _ in points), 5 if points[0][0] >= AEMO_5_MINUTE else 30)
        for end, value, line in points:
            result.add(key, Point(end - timedelta(minutes=minutes), minutes, value, line))
    return check_repeats(result)


AEMO_5_MINUTE = datetime(2021, 9, 30, 14, 0, tzinfo=UTC)  # five-minute settlement began 2021-10-01 00:00 AEST


def days_of(points: Iterable[Point]) -> set[date]:
    return {point.start.date() for point in points}

"""``import_prices --format tidy|ercot|entsoe|entsoe-xml|aemo``: from a read file to stored series.

The command opens the file and hands its rows here; ``read`` turns them into a ``MarketFile`` (sites.markets.
formats) and ``store`` writes it through the services: prices to the sites tied to the node, ancillary prices and
loads to their own tables. Everything is checked before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from django.db import transaction

from sites.choices import DataSource

from . import formats
from .formats import MarketFile, RowError, SeriesKey
from .models import PriceNode
from .services import AncillaryRow, LoadRow, store_ancillary_prices, store_node_prices, store_system_load

MARKET_FORMATS = ("tidy", "ercot", "entsoe", "entsoe-xml", "aemo")
SOURCES = {
    "tidy": DataSource.CSV_TIDY,
    "ercot": DataSource.CSV_ERCOT,
    "entsoe": DataSource.CSV_ENTSOE,
    "entsoe-xml": DataSource.XML_ENTSOE,
    "aemo": DataSource.CSV_AEMO,
}
REQUIRED_COLUMNS = {"tidy": ("timestamp_utc",), "ercot": formats.ERCOT_COLUMNS, "aemo": formats.AEMO_COLUMNS}
# EIC codes of the bidding zones the XML reader names (ENTSO-E's area codes).
ENTSOE_ZONES = {
    "10Y1001A1001A82H": "DE-LU",
    "10YFR-RTE------C": "FR",
    "10YNL----------L": "NL",
    "10YBE----------2": "BE",
}


class ImportRefused(Exception):
    """The file cannot be imported as asked (header, options, a missing node); nothing was written."""


@dataclass
class Selection:
    """What a tidy file's columns become, and the columns left out (with why)."""

    columns: dict[str, SeriesKey] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def check_header(file_format: str, header: Sequence[str]) -> None:
    present = formats.ercot_header(header) if file_format == "ercot" else header
    missing = [name for name in REQUIRED_COLUMNS.get(file_format, ()) if name not in present]
    if file_format == "entsoe":
        try:
            formats.entsoe_columns(header)
        except RowError as exc:
            missing.append(str(exc))
    if missing:
        raise ImportRefused(f"line 1: missing column(s) {', '.join(missing)}; nothing written.")


def select_tidy_columns(header: Sequence[str], node: str | None, series: Sequence[str] | None) -> Selection:
    """Columns to import: every recognised ancillary and load column, and one price column when ``--node`` is given
    (``--series`` names it when several could hold the node's prices; ``--series`` also restricts the others)."""
    selection = Selection()
    wanted = set(series or ())
    unknown = sorted(wanted - set(header))
    if unknown:
        raise ImportRefused(f"--series: no column(s) {', '.join(unknown)} in the file.")
    prices = []
    for column in header:
        if column == "timestamp_utc" or (wanted and column not in wanted):
            continue
        key = formats.tidy_key(column)
        if key is None:
            selection.skipped.append(f"{column} (not a known series)")
        elif key.kind == "price":
            prices.append(key)
        else:
            selection.columns[column] = key
    if prices and not node:
        selection.skipped.append(f"{len(prices)} price column(s), give --node ({', '.join(k.column for k in prices)})")
    elif prices and node:  # a node is given (checked above)
        chosen = prices if len(prices) == 1 else [k for k in prices if node.lower() in k.column]
        if len(chosen) != 1:
            names = ", ".join(k.column for k in (chosen or prices))
            raise ImportRefused(
                f"--node {node}: {len(chosen) or 'no'} price columns fit ({names}); name one with --series."
            )
        key = chosen[0]
        selection.columns[key.column] = SeriesKey("price", key.market, node, key.unit, column=key.column)
    if not selection.columns:
        raise ImportRefused("nothing to import: " + ("; ".join(selection.skipped) or "no series columns"))
    return selection


def read(
    file_format: str,
    *,
    header: Sequence[str],
    rows: Iterable[tuple[int, Mapping[str, str]]] | None = None,
    text: str | None = None,
    node: str | None = None,
    series: Sequence[str] | None = None,
) -> MarketFile:
    """The file's series and bad lines (``text`` for entsoe-xml, ``rows`` for the CSV formats)."""
    try:
        if file_format == "entsoe-xml":
            return formats.read_entsoe_xml(text or "", node, ENTSOE_ZONES)
        check_header(file_format, header)
        if rows is None:
            raise TypeError(f"reading {file_format} needs its rows")
        if file_format == "tidy":
            selection = select_tidy_columns(header, node, series)
            result = formats.read_tidy(rows, selection.columns)
            result.skipped_columns = selection.skipped
            return result
        reader: Callable[..., MarketFile] = {
            "ercot": lambda: formats.read_ercot(rows, node),
            "entsoe": lambda: formats.read_entsoe(rows, header, node),
            "aemo": lambda: formats.read_aemo(rows, node),
        }[file_format]
        return reader()
    except RowError as exc:
        raise ImportRefused(str(exc)) from None


def price_node(key: SeriesKey) -> PriceNode:
    """The PriceNode a price series belongs to (by name, the market deciding between namesakes)."""
    nodes = list(PriceNode.objects.filter(node=key.name))
    if len(nodes) > 1:
        nodes = [node for node in nodes if node.market == key.market]
    if not nodes:
        raise ImportRefused(f"No price node {key.name!r}: create it in the admin (Price nodes) and tie sites to it.")
    node = nodes[0]
    if node.currency != key.unit:
        raise ImportRefused(f"The file quotes {key.name} in {key.unit}, but the price node settles in {node.currency}.")
    return node


def _store_points(node: PriceNode, *, rows: list, source: str) -> int:
    return store_node_prices(node=node, points=rows, source=source)


@transaction.atomic
def store(result: MarketFile, file_format: str, write: Callable[[list, Callable, str, str], int]) -> list[str]:
    """Write every series of the file; returns one summary phrase per series ("ERCOT REGUP ...: 10 new, 0 ...").

    ``write(rows, store_function, source, label)`` does the chunked writing with a progress bar (the command's).
    """
    source = SOURCES[file_format]
    phrases = []
    for key, points in result.series.items():
        if key.kind == "price":
            node = price_node(key)
            sites = node.sites.count()
            new = write(points, partial(_store_points, node), source, key.describe())
            total = len(points) * sites * (points[0].minutes // 5 if points else 0)
            phrases.append(
                f"{key.describe()} to {sites} site(s): {new} new 5-minute prices, {total - new} already present"
            )
            continue
        if key.kind == "ancillary":
            ancillary = [AncillaryRow(key.market, key.name, p.start, p.minutes, p.value) for p in points]
            new = write(ancillary, store_ancillary_prices, source, key.describe())
        else:
            loads = [LoadRow(key.market, key.name, key.load_kind, p.start, p.minutes, p.value) for p in points]
            new = write(loads, store_system_load, source, key.describe())
        phrases.append(f"{key.describe()}: {new} new, {len(points) - new} already present")
    return phrases

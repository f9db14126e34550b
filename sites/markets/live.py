"""Live clients of the real markets, for the sites tied to their price nodes (settings ENERGYARB["LIVE_MARKETS"]).

- ``entsoe``: the ENTSO-E Transparency Platform's API through entsoe-py (``EntsoeRawClient.
  query_day_ahead_prices``; its module-level endpoint set from ``ENTSOE_API_URL``, the key ``ENTSOE_API_KEY``),
  the XML document read by ``sites.markets.formats.read_entsoe_xml``.
- ``aemo``: AEMO's public monthly ``PRICE_AND_DEMAND_<YYYYMM>_<REGION>.csv`` files under ``AEMO_FILES_URL``
  (``/aemo/data/nem/priceanddemand/``), fetched with httpx and read by ``read_aemo``.
- ``ercot``: ERCOT's MIS real-time settlement point prices (NP6-905-CD, report type 12301, one zipped CSV per
  15-minute interval) through gridstatus (``Ercot._get_documents``, private, checked by ``gridstatus_method``
  before each call, lists the documents of the report at
  ``https://<ERCOT_MIS_HOST>/misapp/servlets/IceDocListJsonWS``, ``Ercot.read_docs`` downloads and parses them,
  hour-ending Central Prevailing Time with ``DSTFlag`` to tz-aware interval starts). ``get_spp`` itself always
  reads www.ercot.com; its two building blocks take the host and a session, which is how it is configured.

A fetch stores through the same services as the importer (FX, 5-minute steps, first write wins) and is recorded
as a ``SourceFetch``; a failing source raises a ``SourceError``, stores nothing, and the failure is recorded.
"""

from __future__ import annotations

import csv
import inspect
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction

from sites.choices import DataSource
from sites.clients.errors import SourceDataError, SourceError, SourceRequestRejected, SourceUnavailable
from sites.models import SourceFetch
from sites.services import PriceRowError, track_source_fetch

from .choices import Market
from .formats import MarketFile, Point, RowError, SeriesKey, check_repeats, number, read_aemo, read_entsoe_xml
from .importing import ENTSOE_ZONES
from .models import PriceNode
from .services import LoadRow, store_node_prices, store_system_load

SOURCES: dict[str, str] = {
    Market.ENTSOE: DataSource.ENTSOE_API,
    Market.AEMO: DataSource.AEMO_FILES,
    Market.ERCOT: DataSource.ERCOT_API,
}
ERCOT_LOOKBACK = timedelta(hours=2)  # each refresh re-reads the last two hours of intervals (first write wins)
ERCOT_RT_SPP_REPORT = (
    12301  # NP6-905-CD, gridstatus' SETTLEMENT_POINT_PRICES_AT_RESOURCE_NODES_HUBS_AND_LOAD_ZONES_RTID
)


def knobs() -> dict[str, Any]:
    """settings.ENERGYARB, typed for the values read here (str, float, list)."""
    return settings.ENERGYARB


def _checked(result: MarketFile, source: str, url: str) -> MarketFile:
    if result.errors:
        line, reason = result.errors[0]
        raise SourceDataError(f"{len(result.errors)} bad row(s), first at {line}: {reason}", source=source, url=url)
    return result


def fetch_entsoe(zone: str, start: datetime, end: datetime) -> MarketFile:
    """Day-ahead prices of a bidding zone over ``[start, end)`` (UTC) from the ENTSO-E API via entsoe-py."""
    import pandas as pd
    import requests
    from entsoe import entsoe as entsoe_module
    from entsoe.exceptions import NoMatchingDataError

    config = knobs()
    url, source = str(config["ENTSOE_API_URL"]), str(DataSource.ENTSOE_API)
    entsoe_module.URL = url  # entsoe-py reads its endpoint from this module global
    client = entsoe_module.EntsoeRawClient(
        api_key=config["ENTSOE_API_KEY"] or "unset", retry_count=1, retry_delay=0, timeout=config["HTTP_TIMEOUT_S"]
    )
    try:
        text = client.query_day_ahead_prices(zone.replace("-", "_"), start=pd.Timestamp(start), end=pd.Timestamp(end))
    except NoMatchingDataError:
        raise SourceDataError(f"no day-ahead prices for {zone}", source=source, url=url) from None
    except requests.RequestException as exc:
        raise _http_error(exc, source, url) from None
    return _checked(read_entsoe_xml(text, zone, ENTSOE_ZONES), source, url)


def _http_error(exc: Exception, source: str, url: str) -> SourceError:
    """A requests exception as our source error: 5xx, 429 and transport failures are transient, 4xx is not."""
    import requests

    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else None
        error = SourceUnavailable if status is None or status >= 500 or status == 429 else SourceRequestRejected
        return error(f"HTTP {status}", source=source, url=url, status=status)
    return SourceUnavailable(f"{type(exc).__name__}: {exc}", source=source, url=url)


def fetch_ercot(node: str, start: datetime, end: datetime) -> MarketFile:
    """Real-time 15-minute prices of settlement point ``node`` for the intervals that end in ``(start, end]``
    (UTC), from ERCOT's MIS through gridstatus: one document per interval, all settlement points in each."""
    import zipfile

    import pandas as pd
    import requests
    from gridstatus import Ercot

    config = knobs()
    host, source = str(config["ERCOT_MIS_HOST"]), str(DataSource.ERCOT_API)
    url = f"https://{host}/misapp/servlets/IceDocListJsonWS?reportTypeId={ERCOT_RT_SPP_REPORT}"
    ercot, request = Ercot(), {"timeout": float(config["HTTP_TIMEOUT_S"])}
    local = ercot.default_timezone
    with requests.Session() as session:
        query = {
            "report_type_id": ERCOT_RT_SPP_REPORT,
            "friendly_name_timestamp_after": pd.Timestamp(start).tz_convert(local),
            "friendly_name_timestamp_before": pd.Timestamp(end).tz_convert(local),
            "constructed_name_contains": "csv.zip",
            "base_url": host,
            "request_kwargs": request,
            "session": session,
        }
        try:
            documents = gridstatus_method(ercot, "_get_documents", query)(**query)
            if not documents:
                reason = f"no settlement point price documents after {start:%Y-%m-%d %H:%M}Z"
                raise SourceDataError(reason, source=source, url=url)
            reading = {"docs": documents, "request_kwargs": request, "session": session}
            frame = gridstatus_method(ercot, "read_docs", reading)(**reading)
        except requests.RequestException as exc:
            raise _http_error(exc, source, url) from None
        except (KeyError, TypeError, ValueError, zipfile.BadZipFile, AssertionError) as exc:
            reason = f"unreadable ERCOT document: {type(exc).__name__}: {exc}"
            raise SourceDataError(reason, source=source, url=url) from None
    return _checked(ercot_points(frame, node), source, url)


class GridstatusChanged(RuntimeError):
    """The installed gridstatus lacks a building block ``fetch_ercot`` calls, or its signature changed."""


def gridstatus_method(ercot: Any, name: str, arguments: dict[str, Any]) -> Any:
    """``ercot.<name>``, checked to accept ``arguments`` as keywords before it is called.

    ``Ercot._get_documents`` is private to gridstatus (its public ``get_spp`` takes no host, session or timeout):
    a release may rename it or change its parameters. That must fail loudly, naming what changed, not as a
    ``TypeError`` read as "unreadable ERCOT document" or an ``AttributeError`` deep in the task (docs/markets.md).
    """
    import gridstatus

    where = f"gridstatus {gridstatus.__version__}: Ercot.{name}"
    advice = "sites/markets/live.py (fetch_ercot) relies on it at gridstatus 0.37.0; see docs/markets.md"
    method = getattr(ercot, name, None)
    if not callable(method):
        raise GridstatusChanged(f"{where} is gone; {advice}")
    try:
        inspect.signature(method).bind(**arguments)
    except TypeError as exc:
        raise GridstatusChanged(f"{where} no longer takes {', '.join(sorted(arguments))} ({exc}); {advice}") from None
    return method


def ercot_points(frame: Any, node: str) -> MarketFile:
    """The rows of ``node`` in gridstatus' parsed frame as 15-minute points at their interval start in UTC."""
    result = MarketFile()
    key = SeriesKey("price", Market.ERCOT, node, "USD")
    rows = frame[frame["SettlementPointName"] == node]
    for line, (start, price) in enumerate(zip(rows["Interval Start"], rows["SettlementPointPrice"], strict=True), 1):
        try:
            value = number(str(price), "SettlementPointPrice")
        except RowError as exc:
            result.errors.append((line, str(exc)))
            continue
        if value is None:
            result.errors.append((line, "missing SettlementPointPrice"))
            continue
        result.add(key, Point(start.to_pydatetime().astimezone(UTC), 15, value, line))
    if not result.series and not result.errors:
        result.errors.append((0, f"no prices for settlement point {node}"))
    return check_repeats(result)


def aemo_url(region: str, month: datetime) -> str:
    base = str(knobs()["AEMO_FILES_URL"]).rstrip("/")
    return f"{base}/aemo/data/nem/priceanddemand/PRICE_AND_DEMAND_{month:%Y%m}_{region}.csv"


def fetch_aemo(region: str, month: datetime, *, transport: httpx.BaseTransport | None = None) -> MarketFile:
    """One month of a region's 5-minute prices and demand from AEMO's public file."""
    url, source = aemo_url(region, month), str(DataSource.AEMO_FILES)
    try:
        with httpx.Client(timeout=float(knobs()["HTTP_TIMEOUT_S"]), transport=transport) as client:
            response = client.get(url)
    except httpx.TransportError as exc:
        raise SourceUnavailable(f"{type(exc).__name__}: {exc}", source=source, url=url) from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise SourceUnavailable(f"HTTP {response.status_code}", source=source, url=url, status=response.status_code)
    if response.status_code != 200:
        raise SourceRequestRejected(f"HTTP {response.status_code}", source=source, url=url, status=response.status_code)
    rows = csv.DictReader(io.StringIO(response.text))
    return _checked(read_aemo(((rows.line_num, row) for row in rows), region), source, url)


def _fetch(node: PriceNode, at: datetime) -> MarketFile:
    if node.market == Market.ERCOT:
        return fetch_ercot(node.node, at - ERCOT_LOOKBACK, at)
    if node.market == Market.ENTSOE:
        day = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return fetch_entsoe(node.node, day - timedelta(days=1), day + timedelta(days=2))
    return fetch_aemo(node.node, at)


def refresh_live_prices(*, at: datetime) -> dict[str, int]:
    """Fetch and store every live market's nodes that have sites; returns rows written per node.

    Each node is one recorded fetch; one node failing does not stop the others, and its error is re-raised at the
    end (the first one) so the periodic task retries transient failures.
    """
    written, failure = {}, None
    live = [m for m in knobs()["LIVE_MARKETS"] if m in SOURCES]
    for node in PriceNode.objects.filter(market__in=live, sites__isnull=False).distinct():
        try:
            with track_source_fetch(kind=SourceFetch.Kind.ENERGY, source=SOURCES[node.market]) as outcome:
                result = _fetch(node, at)
                with transaction.atomic():
                    for key, points in result.series.items():
                        if key.kind == "price":
                            outcome.rows_written += store_node_prices(
                                node=node, points=points, source=SOURCES[node.market]
                            )
                        elif key.kind == "load":
                            rows = [
                                LoadRow(key.market, key.name, key.load_kind, p.start, p.minutes, p.value)
                                for p in points
                            ]
                            outcome.rows_written += store_system_load(rows=rows, source=SOURCES[node.market])
            written[str(node)] = outcome.rows_written
        except (SourceUnavailable, SourceRequestRejected, SourceDataError, PriceRowError) as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return written


def live_site_ids() -> set[int]:
    """Sites whose prices come from a live market (the simulator leaves them alone)."""
    from sites.models import Site

    live = [m for m in knobs()["LIVE_MARKETS"] if m in SOURCES]
    return set(Site.objects.filter(price_node__market__in=live).values_list("pk", flat=True))

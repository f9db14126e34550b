"""Live clients of the real markets, for the sites tied to their price nodes (settings ENERGYARB["LIVE_MARKETS"]).

- ``entsoe``: the ENTSO-E Transparency Platform's API through entsoe-py (``EntsoeRawClient.
  query_day_ahead_prices``; its module-level endpoint set from ``ENTSOE_API_URL``, the key ``ENTSOE_API_KEY``),
  the XML document read by ``sites.markets.formats.read_entsoe_xml``.
- ``aemo``: AEMO's public monthly ``PRICE_AND_DEMAND_<YYYYMM>_<REGION>.csv`` files under ``AEMO_FILES_URL``
  (``/aemo/data/nem/priceanddemand/``), fetched with httpx and read by ``read_aemo``.
- ERCOT: not live yet (gridstatus reaches ercot.com's MIS directly and cannot be pointed at another host; the
  importer reads ERCOT's files). docs/markets.md.

A fetch stores through the same services as the importer (FX, 5-minute steps, first write wins) and is recorded
as a ``SourceFetch``; a failing source raises a ``SourceError``, stores nothing, and the failure is recorded.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction

from sites.choices import DataSource
from sites.clients.errors import SourceDataError, SourceRequestRejected, SourceUnavailable
from sites.models import SourceFetch
from sites.services import PriceRowError, track_source_fetch

from .choices import Market
from .formats import MarketFile, read_aemo, read_entsoe_xml
from .importing import ENTSOE_ZONES
from .models import PriceNode
from .services import LoadRow, store_node_prices, store_system_load

SOURCES: dict[str, str] = {Market.ENTSOE: DataSource.ENTSOE_API, Market.AEMO: DataSource.AEMO_FILES}


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
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        error = SourceUnavailable if status is None or status >= 500 or status == 429 else SourceRequestRejected
        raise error(f"HTTP {status}", source=source, url=url, status=status) from None
    except requests.RequestException as exc:
        raise SourceUnavailable(f"{type(exc).__name__}: {exc}", source=source, url=url) from None
    return _checked(read_entsoe_xml(text, zone, ENTSOE_ZONES), source, url)


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

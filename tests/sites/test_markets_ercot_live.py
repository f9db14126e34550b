"""ERCOT live through gridstatus over real sockets: a fake ERCOT MIS on 127.0.0.1 speaking HTTPS (gridstatus always
uses https) serves report 12301 (NP6-905-CD, real-time settlement point prices) as ERCOT does: the document list
as JSON from ``/misapp/servlets/IceDocListJsonWS`` and one zipped CSV per 15-minute interval from
``/misdownload/servlets/mirDownload?doclookupId=``. The CSV rows are the real HB_HUBAVG rows of
``tests/data/markets/ercot_np6-905_hb_hubavg_2024_dst_days.csv`` (both 2024 clock-change days), and what is stored
is checked against the tidy excerpt of the same real prices (interval start, UTC). gridstatus is pointed at the
server by configuration only: ``ERCOT_MIS_HOST`` and requests' ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from sites.clients.errors import SourceDataError, SourceUnavailable
from sites.markets.live import refresh_live_prices
from sites.markets.models import PriceNode
from sites.models import EnergyPrice, SourceFetch
from sites.services import refresh_market_prices
from tests.factories import SiteFactory
from tests.fakeserver import FakeResponse, FakeServer, RecordedRequest
from tests.sites.test_markets_formats import DATA, tidy

pytestmark = pytest.mark.django_db

LIST_PATH = "/misapp/servlets/IceDocListJsonWS"
DOWNLOAD_PATH = "/misdownload/servlets/mirDownload"
CENTRAL = ZoneInfo("America/Chicago")
RT_FILE = DATA / "ercot_np6-905_hb_hubavg_2024_dst_days.csv"
HEADER = (
    "DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointType,SettlementPointPrice,DSTFlag"
)


def ercot_documents() -> dict[str, tuple[dict, bytes]]:
    """doc id -> (the document list's entry, the zipped CSV), one per real 15-minute row, named as ERCOT names
    them: ``SPPHLZNP6905_<YYYYMMDD>_<HHMM of the interval end, Central>[_xhr]_csv`` (``xhr`` for the repeated
    hour's second pass), published a minute after the interval ends. The tidy excerpt gives each row's UTC start
    (the ERCOT-format file was written from it, row for row)."""
    real = tidy("ercot_rt15_hubavg_2024_dst_days.csv", "rt_spp_hb_hubavg_usd_per_mwh")
    starts = [start for start in real if f"{start.astimezone(CENTRAL):%m/%d/%Y}" in ("03/10/2024", "11/03/2024")]
    documents = {}
    with RT_FILE.open() as handle:
        for number, (start, row) in enumerate(zip(starts, csv.DictReader(handle), strict=True)):
            assert real[start] == Decimal(row["SettlementPointPrice"])
            end = (start + timedelta(minutes=15)).astimezone(CENTRAL)
            friendly = f"SPPHLZNP6905_{end:%Y%m%d_%H%M}{'_xhr' if row['DSTFlag'] == 'Y' else ''}_csv"
            published = end + timedelta(seconds=62)
            doc_id = str(1_040_000_000 + number)
            body = io.BytesIO()
            with zipfile.ZipFile(body, "w") as archive:
                line = ",".join(row[column] for column in HEADER.split(","))
                archive.writestr(f"cdr.00012301.0000000000000000.{end:%Y%m%d.%H%M}.csv", f"{HEADER}\n{line}\n")
            entry = {
                "Document": {
                    "ExpiredDate": "2024-12-31T23:59:59-06:00",
                    "ILMStatus": "EXT",
                    "SecurityStatus": "P",
                    "ContentSize": str(len(body.getvalue())),
                    "Extension": "zip",
                    "ReportTypeID": "12301",
                    "FriendlyName": friendly,
                    "ConstructedName": f"cdr.00012301.0000000000000000.{published:%Y%m%d.%H%M%S}.{friendly}.zip",
                    "DocID": doc_id,
                    "PublishDate": published.isoformat(),
                    "ReportName": "Settlement Point Prices at Resource Nodes, Hubs and Load Zones",
                }
            }
            documents[doc_id] = (entry, body.getvalue())
    return documents


@pytest.fixture
def ercot_mis(settings, monkeypatch):
    """A fake ERCOT MIS over HTTPS serving the real rows; gridstatus is configured to trust and use it."""
    with FakeServer(tls=True) as server:
        serve(server, ercot_documents())
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_file)
        settings.ENERGYARB = {
            **settings.ENERGYARB,
            "LIVE_MARKETS": ["ercot"],
            "ERCOT_MIS_HOST": server.netloc,
            "HTTP_TIMEOUT_S": 5.0,
        }
        yield server


def serve(server: FakeServer, documents: dict[str, tuple[dict, bytes]]) -> None:
    listing = {"ListDocsByRptTypeRes": {"DocumentList": [entry for entry, _ in documents.values()]}}

    def download(request: RecordedRequest) -> FakeResponse:
        (doc_id,) = request.query["doclookupId"]
        if doc_id not in documents:
            return FakeResponse.of(status=404, body="Document not found")
        return FakeResponse.of(body=documents[doc_id][1], content_type="application/x-zip-compressed")

    server.add("GET", LIST_PATH, json=listing)
    server.add("GET", DOWNLOAD_PATH, handler=download)


def texas(node: str = "HB_HUBAVG"):
    return SiteFactory(
        price_node=PriceNode.objects.create(market="ercot", node=node, currency="USD", resolution_minutes=15)
    )


def stored(site) -> dict[datetime, Decimal]:
    return dict(EnergyPrice.objects.filter(site=site).values_list("interval_start", "price_usd_per_mwh"))


def test_the_repeated_autumn_hour_comes_through_gridstatus_on_its_utc_starts(ercot_mis):
    site = texas()
    at = datetime(2024, 11, 3, 8, 0, tzinfo=UTC)  # 02:00 CST: the last two hours hold both 01:00 hours

    written = refresh_live_prices(at=at)

    real = tidy("ercot_rt15_hubavg_2024_dst_days.csv", "rt_spp_hb_hubavg_usd_per_mwh")
    prices = stored(site)
    window = [at - timedelta(minutes=5 * k) for k in range(1, 25)]  # 06:00Z .. 07:55Z, both passes of 01:xx
    for start in window:
        quarter = start.replace(minute=start.minute // 15 * 15)
        assert prices[start] == real[quarter], start
    assert set(prices) >= set(window)
    assert written == {"ERCOT (Texas) HB_HUBAVG": len(prices)}
    assert {"ercot_api"} == set(EnergyPrice.objects.filter(site=site).values_list("source", flat=True))
    assert {"USD"} == set(EnergyPrice.objects.filter(site=site).values_list("native_currency", flat=True))
    (listing,) = ercot_mis.requests_to("GET", LIST_PATH)
    assert listing.query["reportTypeId"] == ["12301"]
    fetch = SourceFetch.objects.get()
    assert (fetch.succeeded, fetch.source, fetch.rows_written) == (True, "ercot_api", len(prices))


def test_the_spring_day_skips_the_missing_hour_and_a_second_refresh_adds_nothing(ercot_mis):
    site = texas()
    at = datetime(2024, 3, 10, 9, 0, tzinfo=UTC)  # 04:00 CDT; 02:00-03:00 CST never happened

    refresh_live_prices(at=at)
    first = stored(site)
    refresh_live_prices(at=at)

    real = tidy("ercot_rt15_hubavg_2024_dst_days.csv", "rt_spp_hb_hubavg_usd_per_mwh")
    window = [at - timedelta(minutes=5 * k) for k in range(1, 25)]  # 07:00Z (01:00 CST) .. 08:55Z (03:55 CDT)
    assert all(first[start] == real[start.replace(minute=start.minute // 15 * 15)] for start in window)
    assert stored(site) == first
    assert [f.rows_written for f in SourceFetch.objects.order_by("pk")] == [len(first), 0]


def test_an_unavailable_mis_stores_nothing_and_is_recorded(ercot_mis):
    texas()
    ercot_mis.reset()
    ercot_mis.add("GET", LIST_PATH, status=503, body="Service Unavailable")

    with pytest.raises(SourceUnavailable, match="HTTP 503"):
        refresh_live_prices(at=datetime(2024, 11, 3, 8, tzinfo=UTC))

    assert not EnergyPrice.objects.exists()
    fetch = SourceFetch.objects.get()
    assert not fetch.succeeded and "HTTP 503" in fetch.error and fetch.source == "ercot_api"


def test_a_slow_mis_times_out_as_unavailable(ercot_mis, settings):
    texas()
    settings.ENERGYARB = {**settings.ENERGYARB, "HTTP_TIMEOUT_S": 0.2}
    ercot_mis.reset()
    ercot_mis.add("GET", LIST_PATH, json={"ListDocsByRptTypeRes": {"DocumentList": []}}, delay=3.0)

    with pytest.raises(SourceUnavailable, match="Timeout"):
        refresh_live_prices(at=datetime(2024, 11, 3, 8, tzinfo=UTC))

    assert not EnergyPrice.objects.exists() and not SourceFetch.objects.get().succeeded


def test_a_corrupt_document_or_an_unknown_settlement_point_stores_nothing(ercot_mis):
    texas("HB_NORTH")  # the documents hold HB_HUBAVG only
    with pytest.raises(SourceDataError, match="no prices for settlement point HB_NORTH"):
        refresh_live_prices(at=datetime(2024, 11, 3, 8, tzinfo=UTC))

    PriceNode.objects.filter(node="HB_NORTH").update(node="HB_HUBAVG")
    ercot_mis.reset()
    serve(ercot_mis, {doc_id: (entry, b"PK\x03\x04 not a zip") for doc_id, (entry, _) in ercot_documents().items()})
    with pytest.raises(SourceDataError, match="unreadable ERCOT document"):
        refresh_live_prices(at=datetime(2024, 11, 3, 8, tzinfo=UTC))

    assert not EnergyPrice.objects.exists()
    assert [f.succeeded for f in SourceFetch.objects.order_by("pk")] == [False, False]


def test_the_periodic_refresh_leaves_the_texas_site_to_ercot(ercot_mis, time_machine):
    at = datetime(2024, 11, 3, 8, 0, tzinfo=UTC)
    time_machine.move_to(at)
    site, oslo = texas(), SiteFactory()

    refresh_market_prices(at=at)

    assert set(EnergyPrice.objects.filter(site=site).values_list("source", flat=True)) == {"ercot_api"}
    assert set(EnergyPrice.objects.filter(site=oslo).values_list("source", flat=True)) == {"simulator"}


def _renamed_parameter(self, report_type_id, friendly_name_timestamp_after=None, host=None):
    """An upgrade's ``_get_documents`` whose ``base_url`` became ``host`` (and lost other parameters)."""
    raise AssertionError("never called: the check stops first")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("gone", r"gridstatus \S+: Ercot._get_documents is gone; sites/markets/live.py \(fetch_ercot\) relies on it"),
        ("signature", r"gridstatus \S+: Ercot._get_documents no longer takes base_url, constructed_name_contains, .*"),
    ],
)
def test_an_upgrade_that_drops_or_changes_gridstatus_private_document_list_fails_loudly(
    ercot_mis, monkeypatch, change, message
):
    """``Ercot._get_documents`` is private (its public ``get_spp`` takes no host, session or timeout): a release
    without it, or with other parameters, is named as such, recorded, and stores nothing; before, a signature change
    was reported as an unreadable document and a missing method as a bare AttributeError."""
    from gridstatus import Ercot

    from sites.markets.live import GridstatusChanged

    texas()
    if change == "gone":
        monkeypatch.delattr(Ercot, "_get_documents")
    else:
        monkeypatch.setattr(Ercot, "_get_documents", _renamed_parameter)

    with pytest.raises(GridstatusChanged, match=message):
        refresh_live_prices(at=datetime(2024, 11, 3, 8, tzinfo=UTC))

    assert not EnergyPrice.objects.exists()
    assert not ercot_mis.requests_to("GET", LIST_PATH)
    fetch = SourceFetch.objects.get()
    assert not fetch.succeeded and "Ercot._get_documents" in fetch.error

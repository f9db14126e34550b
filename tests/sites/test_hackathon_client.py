"""The hackathon market API client against a local fake server, its unit conversions, and storing what it reads."""

import logging
import math
import socket
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sites import units
from sites.choices import DataSource
from sites.clients.errors import SourceDataError, SourceError, SourceRequestRejected, SourceUnavailable
from sites.clients.hackathon import HackathonPriceRow, fetch_inventory, fetch_prices
from sites.models import HackathonPrice, SourceFetch
from sites.services import PriceRowError, record_source_fetch, store_hackathon_prices, track_source_fetch
from tests.fakeserver import FakeResponse, fake_server_fixture  # noqa: F401  (registers the fake_server fixture)

# The shapes of ../shared/product/original-api.md; /prices is newest first.
PRICES = [
    {
        "energy_price": 2.860623306283185,
        "hash_price": 3.162577507313854,
        "token_price": 2.3421444297660767,
        "timestamp": "2025-06-21T12:05:00",
    },
    {"energy_price": 3.0, "hash_price": 4.0, "token_price": 2.0, "timestamp": "2025-06-21T12:00:00"},
]
INVENTORY = {
    "inference": {"asic": {"power": 15000, "tokens": 50000}, "gpu": {"power": 5000, "tokens": 1000}},
    "miners": {
        "air": {"hashrate": 1000, "power": 3500},
        "hydro": {"hashrate": 5000, "power": 5000},
        "immersion": {"hashrate": 10000, "power": 10000},
    },
}
NOON = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def api(settings, fake_server):
    """Point the client at the fake server with a generous timeout (tests that need a short one lower it)."""
    settings.ENERGYARB = {**settings.ENERGYARB, "HACKATHON_API_URL": fake_server.url, "HTTP_TIMEOUT_S": 5.0}
    return fake_server


def _with_price(**changes):
    return [{**PRICES[0], **changes}, PRICES[1]]


# Success.


def test_prices_are_validated_and_returned_oldest_first_in_utc(api):
    api.add("GET", "/prices", json=PRICES)

    rows = fetch_prices()

    assert [row.interval_start for row in rows] == [NOON, NOON.replace(minute=5)]
    assert rows[0] == HackathonPriceRow(
        interval_start=NOON, energy_price=Decimal("3"), hash_price=Decimal("4"), token_price=Decimal("2")
    )
    assert rows[1].token_price == Decimal("2.342144429766077")  # 15 places, as stored


def test_prices_convert_to_real_units_with_the_declared_scale(api):
    api.add("GET", "/prices", json=PRICES)

    real = fetch_prices()[0].to_real()

    assert real.price_usd_per_mwh == Decimal("90")  # 3.0 x 30
    assert real.hashprice_usd_per_ph_day == Decimal("48")  # 4.0 x 12
    assert real.inference_price_usd_per_mtok == Decimal("5")  # 2.0 x 2.5


def test_inventory_is_read_in_watts_and_converted(api):
    api.add("GET", "/inventory", json=INVENTORY)

    inventory = fetch_inventory()

    assert set(inventory.miners) == {"air", "hydro", "immersion"}
    assert set(inventory.inference) == {"gpu", "asic"}
    hydro = inventory.miners["hydro"]
    assert (hydro.hashrate, hydro.power_w, hydro.power_kw) == (Decimal(5000), Decimal(5000), Decimal(5))
    assert hydro.hashrate_th_per_s() == Decimal("300.00")
    assert inventory.miners["air"].power_kw == Decimal("3.5")
    assert inventory.inference["asic"].power_kw == Decimal(15)
    assert round(inventory.inference["gpu"].tokens_per_s, 6) == Decimal("3.333333")  # 1000 tokens per 300 s


def test_api_key_is_sent_as_x_api_key_only_when_configured(api, settings):
    api.add("GET", "/prices", json=PRICES)
    fetch_prices()
    settings.ENERGYARB = {**settings.ENERGYARB, "HACKATHON_API_KEY": "key-123"}
    fetch_prices()

    first, second = api.requests_to("GET", "/prices")
    assert "x-api-key" not in first.headers
    assert second.headers["x-api-key"] == "key-123"


def test_a_transient_failure_then_success_is_two_separate_answers(api):
    api.add("GET", "/prices", status=503)
    api.add("GET", "/prices", json=PRICES)

    with pytest.raises(SourceUnavailable):
        fetch_prices()
    assert len(fetch_prices()) == 2


# Unavailable: transient, retryable.


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_server_errors_are_source_unavailable(api, status):
    api.add("GET", "/prices", status=status, body="upstream trouble")

    with pytest.raises(SourceUnavailable) as caught:
        fetch_prices()

    assert caught.value.retryable
    assert caught.value.status == status
    assert f"HTTP {status}" in str(caught.value)


def test_timeout_is_source_unavailable(api, settings):
    settings.ENERGYARB = {**settings.ENERGYARB, "HTTP_TIMEOUT_S": 0.2}
    api.add("GET", "/prices", json=PRICES, delay=3.0)

    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"no answer within 0\.2 s"):
        fetch_prices()

    assert time.monotonic() - started < 2.0


def test_connection_refused_is_source_unavailable(settings):
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.ENERGYARB = {**settings.ENERGYARB, "HACKATHON_API_URL": f"http://127.0.0.1:{port}"}

    with pytest.raises(SourceUnavailable, match="ConnectError"):
        fetch_prices()


@pytest.mark.parametrize("status", [401, 403, 404])
def test_client_errors_are_rejected_and_not_retryable(api, status):
    api.add("GET", "/inventory", status=status)

    with pytest.raises(SourceRequestRejected) as caught:
        fetch_inventory()

    assert not caught.value.retryable


# Bad data: not retryable.


@pytest.mark.parametrize(
    "body",
    ["{not json", "", "<html>Service page</html>", '[{"energy_price": 3.0,'],
    ids=["garbage", "empty", "html", "truncated"],
)
def test_malformed_json_is_a_data_error(api, body):
    api.add("GET", "/prices", body=body, content_type="application/json")

    with pytest.raises(SourceDataError, match="malformed JSON") as caught:
        fetch_prices()

    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_with_price(energy_price=math.nan), "energy_price nan is not a finite number"),
        (_with_price(token_price=math.inf), "token_price inf is not a finite number"),
        (_with_price(hash_price=-0.5), "hash_price -0.5 is below the minimum 0"),
        (_with_price(energy_price=1e12), "energy_price 1000000000000.0 is above the plausible maximum 667"),
        (_with_price(token_price=-1), "token_price -1 is below the minimum 0"),
        (_with_price(hash_price="4.0"), "hash_price '4.0' is not a number"),
        (_with_price(hash_price=True), "hash_price is true, not a number"),
        (_with_price(energy_price=None), "missing energy_price"),
        (_with_price(timestamp="yesterday"), "timestamp 'yesterday' is not an ISO 8601 timestamp"),
        (_with_price(timestamp="1970-01-01T00:00:00"), "outside 2000-2100"),
        (_with_price(timestamp=PRICES[1]["timestamp"]), "prices[1]: interval 2025-06-21T12:00:00+00:00 repeats"),
        ([[3.0, 4.0, 2.0]], "prices[0]: item is list, expected an object"),
        ({"prices": PRICES}, "prices is dict, expected a list"),
    ],
    ids=[
        "nan",
        "infinity",
        "negative-hash-price",
        "absurd-magnitude",
        "negative-token-price",
        "string",
        "boolean",
        "null",
        "bad-timestamp",
        "ancient-timestamp",
        "duplicate-interval",
        "row-not-object",
        "not-a-list",
    ],
)
def test_out_of_range_or_mistyped_prices_are_a_data_error(api, body, reason):
    api.add("GET", "/prices", json=body)

    with pytest.raises(SourceDataError) as caught:
        fetch_prices()

    assert reason in str(caught.value)
    assert api.url in str(caught.value)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda inv: inv["miners"].pop("hydro"), "miners has no hydro"),
        (lambda inv: inv["inference"]["gpu"].update(power=0), "inference.gpu.power 0 is not above the minimum 0"),
        (lambda inv: inv["miners"]["air"].update(hashrate=-1000), "miners.air.hashrate -1000 is not above"),
        (lambda inv: inv["miners"]["air"].update(power=math.nan), "miners.air.power nan is not a finite number"),
        (lambda inv: inv["miners"]["air"].update(power=3.5e9), "above the plausible maximum 1000000"),
        (lambda inv: inv["inference"]["asic"].pop("tokens"), "inference.asic has no tokens"),
        (lambda inv: inv.pop("miners"), "inventory has no miners"),
    ],
    ids=["missing-type", "zero-power", "negative-hashrate", "nan-power", "absurd-power", "missing-field", "no-miners"],
)
def test_bad_inventory_is_a_data_error(api, change, reason):
    inventory = {section: {name: dict(spec) for name, spec in types.items()} for section, types in INVENTORY.items()}
    change(inventory)
    api.add("GET", "/inventory", json=inventory)

    with pytest.raises(SourceDataError, match=reason.replace(".", r"\.")):
        fetch_inventory()


def test_a_refused_answer_is_logged(api, caplog):
    api.add("GET", "/prices", json=_with_price(hash_price=-3))

    with caplog.at_level(logging.WARNING, logger="sites.clients.hackathon"), pytest.raises(SourceDataError):
        fetch_prices()

    assert "hash_price -3 is below the minimum 0" in caplog.text
    assert f"{api.url}/prices" in caplog.text


# Storing what the client read: nothing stored is lost or changed by a failure, and the attempt is recorded.


def _fetch_and_store():
    with track_source_fetch(kind=SourceFetch.Kind.MARKET, source=DataSource.HACKATHON_API) as outcome:
        outcome.rows_written = store_hackathon_prices(rows=fetch_prices(), source=DataSource.HACKATHON_API)
    return outcome


@pytest.mark.django_db
def test_fetched_prices_are_stored_once_and_the_fetch_recorded(api):
    api.add("GET", "/prices", json=PRICES)

    first, second = _fetch_and_store(), _fetch_and_store()

    assert (first.rows_written, second.rows_written) == (2, 0)
    assert HackathonPrice.objects.count() == 2
    stored = HackathonPrice.objects.get(interval_start=NOON)
    assert (stored.energy_price, stored.hash_price, stored.source) == (Decimal(3), Decimal(4), "hackathon_api")
    fetches = list(SourceFetch.objects.order_by("id").values_list("succeeded", "rows_written", "kind", "source"))
    assert fetches == [(True, 2, "market", "hackathon_api"), (True, 0, "market", "hackathon_api")]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("route", "expected_error"),
    [
        ({"status": 503}, SourceUnavailable),
        ({"body": "{oops", "content_type": "application/json"}, SourceDataError),
        ({"json": _with_price(hash_price=-1)}, SourceDataError),
    ],
    ids=["5xx", "malformed", "out-of-range"],
)
def test_a_failed_fetch_writes_no_row_changes_nothing_and_is_recorded(api, route, expected_error):
    api.add("GET", "/prices", json=PRICES)
    _fetch_and_store()
    before = list(HackathonPrice.objects.values_list("id", "interval_start", "energy_price", "hash_price"))
    api.reset()
    api.add("GET", "/prices", **route)

    with pytest.raises(expected_error):
        _fetch_and_store()

    assert list(HackathonPrice.objects.values_list("id", "interval_start", "energy_price", "hash_price")) == before
    failed = SourceFetch.objects.order_by("-id").first()
    assert (failed.succeeded, failed.rows_written, failed.kind) == (False, 0, "market")
    assert failed.finished_at >= failed.started_at
    assert "/prices" in failed.error


@pytest.mark.django_db
def test_a_later_different_value_for_a_stored_interval_does_not_rewrite_it():
    row = HackathonPriceRow(interval_start=NOON, energy_price=Decimal(3), hash_price=Decimal(4), token_price=Decimal(2))
    store_hackathon_prices(rows=[row], source=DataSource.HACKATHON_API)
    changed = HackathonPriceRow(
        interval_start=NOON, energy_price=Decimal(9), hash_price=Decimal(9), token_price=Decimal(9)
    )

    assert store_hackathon_prices(rows=[changed], source=DataSource.HACKATHON_API) == 0
    assert HackathonPrice.objects.get().energy_price == Decimal(3)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rows", "source", "message"),
    [
        ([HackathonPriceRow(NOON, Decimal(1), Decimal(1), Decimal(1))] * 2, "hackathon_api", "repeat an interval"),
        ([HackathonPriceRow(NOON, Decimal(1), Decimal(-1), Decimal(1))], "hackathon_api", "hash_price -1 is outside"),
        ([HackathonPriceRow(NOON, Decimal("NaN"), Decimal(1), Decimal(1))], "hackathon_api", "energy_price NaN"),
        ([HackathonPriceRow(NOON, Decimal(1), Decimal(1), Decimal(1))], "carrier_pigeon", "Unknown data source"),
    ],
    ids=["duplicate", "negative", "nan", "unknown-source"],
)
def test_store_refuses_invalid_rows_and_writes_nothing(rows, source, message):
    with pytest.raises(PriceRowError, match=message):
        store_hackathon_prices(rows=rows, source=source)
    assert not HackathonPrice.objects.exists()


@pytest.mark.django_db
def test_record_source_fetch_keeps_the_error_and_rejects_unknown_kinds():
    fetch = record_source_fetch(
        kind="weather", source="open_meteo", started_at=NOON, succeeded=False, error="open_meteo: HTTP 502"
    )
    assert (fetch.succeeded, fetch.error, fetch.rows_written) == (False, "open_meteo: HTTP 502", 0)
    assert fetch.finished_at is not None

    with pytest.raises(ValueError, match="Unknown fetch kind"):
        record_source_fetch(kind="gossip", source="open_meteo", started_at=NOON, succeeded=True)


def test_source_errors_share_a_base_class_for_callers_that_only_log():
    assert issubclass(SourceUnavailable, SourceError)
    assert issubclass(SourceDataError, SourceError)
    assert issubclass(SourceRequestRejected, SourceError)
    assert [cls.retryable for cls in (SourceUnavailable, SourceDataError, SourceRequestRejected)] == [
        True,
        False,
        False,
    ]


def test_fake_server_records_unrouted_requests_and_answers_404(fake_server):
    import httpx

    fake_server.add("POST", "/echo", handler=lambda request: FakeResponse.of(status=201, json=request.json()))

    missing = httpx.get(f"{fake_server.url}/nowhere?x=1")
    echoed = httpx.post(f"{fake_server.url}/echo", json={"a": 1}, headers={"X-Trace": "t1"})

    assert missing.status_code == 404
    assert "no fake route for GET /nowhere" in missing.json()["detail"]
    assert (echoed.status_code, echoed.json()) == (201, {"a": 1})
    nowhere, echo = fake_server.requests
    assert nowhere.query == {"x": ["1"]}
    assert (echo.method, echo.headers["x-trace"], echo.json()) == ("POST", "t1", {"a": 1})


# Unit conversions: the hackathon's example accounting, and round trips.


def test_ten_hydro_miners_earn_what_the_api_accounting_says_in_both_unit_systems():
    # The API: revenue per interval = units x hashrate x hash_price = 10 x 5000 x 4.0.
    abstract = units.hackathon_miner_revenue(units=10, hashrate=5000, hash_price=4.0)
    assert abstract == Decimal(200_000)
    usd = units.hackathon_units_to_usd(abstract)
    assert usd == Decimal("0.5")

    # The same in real units: 10 x 300 TH/s = 3 PH/s at 48 USD per PH/s per day, for 1/288 of a day.
    ph_per_s = units.hackathon_hashrate_to_th_per_s(10 * 5000) / units.TH_PER_PH
    hashprice = units.hackathon_hash_price_to_usd_per_ph_day(4.0)
    assert (ph_per_s, hashprice) == (Decimal(3), Decimal(48))
    assert ph_per_s * hashprice / units.INTERVALS_PER_DAY == usd


def test_power_cost_matches_the_api_accounting_in_both_unit_systems():
    # The API: power cost per interval = total watts x energy_price = (10 x 5000 W) x 3.0.
    watts = 10 * 5000
    abstract = units.hackathon_power_cost(watts=watts, energy_price=3.0)
    assert abstract == Decimal(150_000)
    usd = units.hackathon_units_to_usd(abstract)

    # Real: 50 kW for 5 minutes is 50/12 kWh, at 90 USD/MWh.
    assert units.watts_to_kw(watts) == Decimal(50)
    real = units.interval_energy_mwh(watts) * units.hackathon_energy_price_to_usd_per_mwh(3.0)
    assert abs(real - usd) < Decimal("1e-20")
    assert usd == Decimal("0.375")


def test_inference_revenue_matches_the_api_accounting_in_both_unit_systems():
    abstract = units.hackathon_inference_revenue(units=10, tokens=50_000, token_price=2.0)
    assert abstract == Decimal(1_000_000)
    tokens = Decimal(10 * 50_000)
    real = tokens / units.TOKENS_PER_MTOK * units.hackathon_token_price_to_usd_per_mtok(2.0)
    assert real == units.hackathon_units_to_usd(abstract) == Decimal("2.5")


def test_one_money_scale_keeps_profit_signs_and_rankings():
    prices = {"energy_price": Decimal(3), "hash_price": Decimal(4), "token_price": Decimal(2)}
    allocations = {  # (units, revenue per interval, watts per unit)
        "hydro": (200, units.hackathon_miner_revenue(units=200, hashrate=5000, hash_price=prices["hash_price"]), 5000),
        "air": (200, units.hackathon_miner_revenue(units=200, hashrate=1000, hash_price=prices["hash_price"]), 3500),
        "gpu": (
            200,
            units.hackathon_inference_revenue(units=200, tokens=1000, token_price=prices["token_price"]),
            5000,
        ),
    }
    profit_units = {
        name: revenue - units.hackathon_power_cost(watts=count * watts, energy_price=prices["energy_price"])
        for name, (count, revenue, watts) in allocations.items()
    }
    profit_usd = {name: units.hackathon_units_to_usd(value) for name, value in profit_units.items()}

    assert sorted(profit_units, key=profit_units.get) == sorted(profit_usd, key=profit_usd.get)
    assert {name: value > 0 for name, value in profit_units.items()} == {"hydro": True, "air": False, "gpu": False}
    assert {name: value > 0 for name, value in profit_usd.items()} == {"hydro": True, "air": False, "gpu": False}


_prices = st.decimals(min_value=-100, max_value=100, places=15, allow_nan=False, allow_infinity=False)


@given(_prices)
def test_price_conversions_round_trip(value):
    tolerance = Decimal("1e-20")
    pairs = [
        (units.hackathon_energy_price_to_usd_per_mwh, units.usd_per_mwh_to_hackathon_energy_price),
        (units.hackathon_hash_price_to_usd_per_ph_day, units.usd_per_ph_day_to_hackathon_hash_price),
        (units.hackathon_token_price_to_usd_per_mtok, units.usd_per_mtok_to_hackathon_token_price),
        (units.hackathon_hashrate_to_th_per_s, units.th_per_s_to_hackathon_hashrate),
        (units.hackathon_tokens_to_tokens_per_s, units.tokens_per_s_to_hackathon_tokens),
        (units.hackathon_units_to_usd, units.usd_to_hackathon_units),
        (units.watts_to_kw, units.kw_to_watts),
    ]
    for forward, back in pairs:
        assert abs(back(forward(value)) - value) <= tolerance, forward.__name__


def test_the_default_scale_factors_are_the_documented_ones():
    scale = units.DEFAULT_SCALE
    assert scale.usd_per_mwh_per_energy_price == Decimal(30)
    assert scale.usd_per_ph_day_per_hash_price == Decimal(12)
    assert scale.usd_per_mtok_per_token_price == Decimal("2.5")
    custom = units.HackathonScale(usd_per_unit=Decimal("0.000005"))
    assert units.hackathon_energy_price_to_usd_per_mwh(1, custom) == Decimal(60)
    with pytest.raises(ValueError, match="positive"):
        units.HackathonScale(usd_per_unit=Decimal(0))

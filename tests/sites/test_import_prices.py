"""`import_prices`: the event trace imports once; a bad file is rejected whole; --skip-invalid; energyarb format."""

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from sites.models import EnergyPrice, HackathonPrice, MarketPrice
from tests.factories import SiteFactory

pytestmark = pytest.mark.django_db

TRACE_NAME = "mara-hackathon-2025-06-21-prices.csv"
TRACE_CANDIDATES = [
    Path(settings.BASE_DIR) / "data" / TRACE_NAME,
    Path(settings.BASE_DIR).parent / "shared" / "data" / TRACE_NAME,
]
TRACE = next((path for path in TRACE_CANDIDATES if path.is_file()), TRACE_CANDIDATES[-1])
EVENT_START = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)


class TtyIO(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(path, *args, stderr=None):
    out, err = io.StringIO(), stderr or io.StringIO()
    call_command("import_prices", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def snapshot():
    return list(
        HackathonPrice.objects.order_by("id").values_list(
            "id", "interval_start", "energy_price", "hash_price", "token_price", "source"
        )
    )


@pytest.fixture
def trace_lines():
    assert TRACE.is_file(), f"The event trace is missing: looked for {[str(p) for p in TRACE_CANDIDATES]}"
    return TRACE.read_text().splitlines()


@pytest.fixture
def corrupted(tmp_path, trace_lines):
    """Write a copy of the trace with some lines replaced (1-based line numbers, header = line 1)."""

    def write(replacements=None, lines=None):
        lines = list(lines or trace_lines)
        for number, text in (replacements or {}).items():
            lines[number - 1] = text
        path = tmp_path / "trace.csv"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


def _with_field(line: str, index: int, value: str) -> str:
    fields = line.split(",")
    fields[index] = value
    return ",".join(fields)


# The event trace.


def test_the_event_trace_imports_110_intervals(trace_lines):
    out, _ = run(TRACE, "--format", "mara")

    assert "110 new, 0 already present" in out
    assert HackathonPrice.objects.count() == 110
    starts = list(HackathonPrice.objects.order_by("interval_start").values_list("interval_start", flat=True))
    assert starts[0] == EVENT_START  # naive 12:00 read as UTC
    assert starts[-1] == datetime(2025, 6, 21, 21, 5, tzinfo=UTC)
    assert all(later - earlier == timedelta(minutes=5) for earlier, later in pairwise(starts))
    first = HackathonPrice.objects.get(interval_start=EVENT_START)
    assert (first.energy_price, first.hash_price, first.token_price) == (Decimal(3), Decimal(4), Decimal(2))
    assert first.source == "csv_mara"
    # 16 decimal places in the file, 15 stored (rounded half-even).
    last = HackathonPrice.objects.get(interval_start=datetime(2025, 6, 21, 21, 5, tzinfo=UTC))
    assert last.token_price == Decimal("0.776104605364550")


def test_importing_the_trace_again_adds_nothing_and_changes_nothing():
    run(TRACE, "--format", "mara")
    before = snapshot()

    out, _ = run(TRACE, "--format", "mara")

    assert "0 new, 110 already present" in out
    assert snapshot() == before


def test_a_file_with_different_values_for_stored_intervals_changes_nothing(corrupted, trace_lines):
    run(TRACE, "--format", "mara")
    before = snapshot()
    path = corrupted({2: "2025-06-21T12:00:00,9.0,9.0,9.0"})

    out, _ = run(path, "--format", "mara")

    assert "0 new, 110 already present" in out
    assert snapshot() == before


# A bad row rejects the whole file.


def test_a_non_numeric_price_at_line_57_rejects_the_whole_file(corrupted, trace_lines):
    path = corrupted({57: _with_field(trace_lines[56], 1, "abc")})

    with pytest.raises(CommandError, match=r"line 57: energy_price 'abc' is not a number") as caught:
        run(path, "--format", "mara")

    assert "nothing written" in str(caught.value)
    assert not HackathonPrice.objects.exists()


def test_a_missing_column_rejects_the_whole_file(corrupted, trace_lines):
    path = corrupted(lines=[line.rsplit(",", 1)[0] for line in trace_lines])

    with pytest.raises(CommandError, match=r"line 1: missing column\(s\) token_price"):
        run(path, "--format", "mara")

    assert not HackathonPrice.objects.exists()


@pytest.mark.parametrize("timestamp", ["2025-06-21T25:00:00", "21/06/2025 12:45", ""])
def test_a_bad_timestamp_rejects_the_whole_file(corrupted, trace_lines, timestamp):
    path = corrupted({11: _with_field(trace_lines[10], 0, timestamp)})

    with pytest.raises(CommandError, match=r"line 11: (timestamp .* is not an ISO 8601 timestamp|missing timestamp)"):
        run(path, "--format", "mara")

    assert not HackathonPrice.objects.exists()


def test_every_bad_line_is_named_with_its_reason(corrupted, trace_lines):
    path = corrupted(
        {
            5: _with_field(trace_lines[4], 3, "NaN"),
            57: _with_field(trace_lines[56], 2, "-1.5"),
            90: trace_lines[89].rsplit(",", 1)[0],
            100: trace_lines[99] + ",7",
            111: _with_field(trace_lines[110], 1, "1e9"),
        }
    )

    with pytest.raises(CommandError) as caught:
        run(path, "--format", "mara")

    message = str(caught.value)
    assert "5 invalid line(s)" in message
    assert "line 5: token_price 'NaN' is not a finite number" in message
    assert "line 57: hash_price '-1.5' is below the minimum 0" in message
    assert "line 90: missing token_price" in message
    assert "line 100: 5 values for 4 columns" in message
    assert "line 111: energy_price '1e9' is above the plausible maximum 667" in message
    assert not HackathonPrice.objects.exists()


def test_a_repeated_interval_is_a_bad_line(corrupted, trace_lines):
    path = corrupted({3: trace_lines[1]})

    with pytest.raises(CommandError, match=r"line 3: interval 2025-06-21T12:00:00\+00:00 repeats line 2"):
        run(path, "--format", "mara")


def test_skip_invalid_writes_the_good_rows_and_lists_the_bad_lines(corrupted, trace_lines):
    path = corrupted({57: _with_field(trace_lines[56], 1, "abc"), 80: _with_field(trace_lines[79], 0, "soon")})

    out, err = run(path, "--format", "mara", "--skip-invalid")

    assert HackathonPrice.objects.count() == 108
    assert "108 new, 0 already present" in out
    assert "skipped 2 invalid line(s): 57, 80" in out
    assert "skipped line 57: energy_price 'abc' is not a number" in err
    assert "skipped line 80: timestamp 'soon' is not an ISO 8601 timestamp" in err

    out, _ = run(TRACE, "--format", "mara")  # the full trace then fills in exactly the two missing intervals
    assert "2 new, 108 already present" in out
    assert HackathonPrice.objects.count() == 110


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty"), ("timestamp,energy_price,hash_price,token_price,timestamp\n", "repeated column")],
    ids=["empty", "repeated-column"],
)
def test_unreadable_files_are_rejected(tmp_path, content, message):
    path = tmp_path / "prices.csv"
    path.write_text(content)

    with pytest.raises(CommandError, match=message):
        run(path, "--format", "mara")


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match=r"Cannot read .*nowhere\.csv"):
        run(tmp_path / "nowhere.csv", "--format", "mara")


def test_site_is_refused_for_the_market_wide_trace():
    with pytest.raises(CommandError, match="--site applies to --format energyarb only"):
        run(TRACE, "--format", "mara", "--site", "site_5_texas")


def test_progress_is_shown_on_a_tty_and_not_otherwise():
    _, err = run(TRACE, "--format", "mara", stderr=TtyIO())
    assert "validating" in err
    assert "110/110" in err

    _, err = run(TRACE, "--format", "mara", "--no-progress", stderr=TtyIO())
    assert "validating" not in err

    _, err = run(TRACE, "--format", "mara")  # not a tty
    assert err == ""


# The energyarb format.

HEADER = "interval_start,site,grid_region,price_usd_per_mwh,hashprice_usd_per_ph_day,inference_price_usd_per_mtok"
GOOD_ROWS = [
    "2026-06-01T00:00:00+00:00,site_5_texas,,45.10,52.5,2.10",
    "2026-06-01T00:00:00+00:00,site_3_norway,,-12.50,52.5,2.10",  # negative price; same market prices
    "2026-06-01T02:05:00+02:00,site_5_texas,,4999.99,,",  # 00:05 UTC; no market prices in this row
    "2026-06-01T00:05:00Z,,ERCOT,-1000,53.0,2.2",  # a region price at the lower bound
]


@pytest.fixture
def sites():
    return {
        "texas": SiteFactory(code="site_5_texas", grid_region="ERCOT"),
        "norway": SiteFactory(code="site_3_norway", grid_region="NO1"),
    }


@pytest.fixture
def energyarb_file(tmp_path):
    def write(rows, header=HEADER):
        path = tmp_path / "energyarb.csv"
        path.write_text("\n".join([header, *rows]) + "\n")
        return path

    return write


def test_energyarb_format_imports_energy_and_market_prices(sites, energyarb_file):
    out, _ = run(energyarb_file(GOOD_ROWS), "--format", "energyarb")

    assert "energy prices: 4 new, 0 already present; market prices: 2 new, 0 already present" in out
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    t1 = t0 + timedelta(minutes=5)
    prices = {
        (price.site.code if price.site else price.grid_region, price.interval_start): price.price_usd_per_mwh
        for price in EnergyPrice.objects.select_related("site")
    }
    assert prices == {
        ("site_5_texas", t0): Decimal("45.10"),
        ("site_3_norway", t0): Decimal("-12.50"),
        ("site_5_texas", t1): Decimal("4999.99"),
        ("ERCOT", t1): Decimal("-1000.00"),
    }
    assert EnergyPrice.objects.get(grid_region="ERCOT").site is None
    assert set(EnergyPrice.objects.values_list("source", flat=True)) == {"csv"}
    market = list(
        MarketPrice.objects.order_by("interval_start").values_list(
            "interval_start", "hashprice_usd_per_ph_day", "inference_price_usd_per_mtok"
        )
    )
    assert market == [(t0, Decimal("52.5"), Decimal("2.1")), (t1, Decimal("53"), Decimal("2.2"))]


def test_energyarb_import_again_adds_nothing(sites, energyarb_file):
    path = energyarb_file(GOOD_ROWS)
    run(path, "--format", "energyarb")
    before = (list(EnergyPrice.objects.values_list()), list(MarketPrice.objects.values_list()))

    out, _ = run(path, "--format", "energyarb")

    assert "energy prices: 0 new, 4 already present; market prices: 0 new, 2 already present" in out
    assert (list(EnergyPrice.objects.values_list()), list(MarketPrice.objects.values_list())) == before


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("2026-06-01T00:10:00+00:00,site_5_texas,,20000.01,,", "price_usd_per_mwh '20000.01' is above"),
        ("2026-06-01T00:10:00+00:00,site_5_texas,,-1000.01,,", "price_usd_per_mwh '-1000.01' is below the minimum"),
        ("2026-06-01T00:10:00+00:00,site_5_texas,,inf,,", "price_usd_per_mwh 'inf' is not a finite number"),
        ("2026-06-01T00:10:00+00:00,site_5_texas,,40,-1,2", "hashprice_usd_per_ph_day '-1' is below the minimum 0"),
        ("2026-06-01T00:10:00+00:00,site_5_texas,,40,50,1000.5", "inference_price_usd_per_mtok '1000.5' is above"),
        ("2026-06-01T00:10:00+00:00,site_5_texas,,40,50,", "missing inference_price_usd_per_mtok"),
        ("2026-06-01T00:10:00,site_5_texas,,40,,", "interval_start '2026-06-01T00:10:00' has no UTC offset"),
        (
            "2026-06-01T00:12:00+00:00,site_5_texas,,40,,",
            "interval_start '2026-06-01T00:12:00+00:00' is not on a 5-minute boundary",
        ),
        ("2026-06-01T00:10:00+00:00,site_99_mars,,40,,", "unknown site 'site_99_mars'"),
        ("2026-06-01T00:10:00+00:00,site_5_texas,ERCOT,40,,", "give a site or a grid_region, not both"),
        ("2026-06-01T00:10:00+00:00,,,40,,", "no site or grid_region"),
        ("2026-06-01T00:00:00+00:00,site_5_texas,,41,,", "site_5_texas at 2026-06-01T00:00:00+00:00 repeats line 2"),
        ("2026-06-01T00:00:00+00:00,,NO1,40,60,2.10", "market prices differ from line 2 for the same interval"),
    ],
    ids=[
        "energy-too-high",
        "energy-too-low",
        "energy-infinite",
        "negative-hashprice",
        "inference-too-high",
        "half-a-market-pair",
        "naive-timestamp",
        "off-boundary",
        "unknown-site",
        "site-and-region",
        "no-owner",
        "duplicate",
        "conflicting-market",
    ],
)
def test_energyarb_bad_row_rejects_the_whole_file(sites, energyarb_file, row, reason):
    path = energyarb_file([*GOOD_ROWS, row])

    with pytest.raises(CommandError) as caught:
        run(path, "--format", "energyarb")

    assert f"line 6: {reason}" in str(caught.value)
    assert not EnergyPrice.objects.exists()
    assert not MarketPrice.objects.exists()


def test_energyarb_skip_invalid_writes_the_good_rows(sites, energyarb_file):
    path = energyarb_file([*GOOD_ROWS, "2026-06-01T00:10:00+00:00,site_5_texas,,99999,,"])

    out, err = run(path, "--format", "energyarb", "--skip-invalid")

    assert "energy prices: 4 new" in out
    assert "skipped 1 invalid line(s): 6" in out
    assert "skipped line 6: price_usd_per_mwh '99999' is above" in err
    assert EnergyPrice.objects.count() == 4


def test_site_option_supplies_the_site_for_a_file_without_one(sites, energyarb_file):
    path = energyarb_file(["2026-06-01T00:00:00+01:00,33.3"], header="interval_start,price_usd_per_mwh")

    run(path, "--format", "energyarb", "--site", "site_3_norway")

    price = EnergyPrice.objects.get()
    assert (price.site, price.interval_start) == (sites["norway"], datetime(2026, 5, 31, 23, 0, tzinfo=UTC))


def test_a_file_without_site_or_region_needs_the_site_option(sites, energyarb_file):
    path = energyarb_file(["2026-06-01T00:00:00+00:00,33.3"], header="interval_start,price_usd_per_mwh")

    with pytest.raises(CommandError, match=r"missing column\(s\) site \(or grid_region, or --site\)"):
        run(path, "--format", "energyarb")
    with pytest.raises(CommandError, match="--site 'site_99': no such site"):
        run(path, "--format", "energyarb", "--site", "site_99")


def test_everything_is_written_in_one_transaction(sites, energyarb_file, monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("sites.management.commands.import_prices.store_market_prices", fail)

    with pytest.raises(RuntimeError):
        run(energyarb_file(GOOD_ROWS), "--format", "energyarb")

    assert not EnergyPrice.objects.exists()  # written first, rolled back with the failed market prices

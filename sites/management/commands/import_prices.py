"""Import a price file: the hackathon event trace (``--format mara``) or energyarb's own CSV (``--format energyarb``).

``mara``: columns ``timestamp,energy_price,hash_price,token_price`` in the hackathon API's abstract units, stored
as ``HackathonPrice`` (see ``sites.units`` for their meaning). The trace's timestamps are naive (the API's own
clock) and are read as UTC; a timestamp with an offset is converted to UTC.

``energyarb``: columns ``interval_start`` (ISO 8601 with a UTC offset, on a 5-minute boundary), ``site`` (a site
code) or ``grid_region``, ``price_usd_per_mwh`` (negative allowed, -1,000..20,000), and optionally
``hashprice_usd_per_ph_day`` and ``inference_price_usd_per_mtok`` (both or neither in a row; rows for several
sites may repeat an interval's market prices, but must agree). Stored as ``EnergyPrice`` and ``MarketPrice``.
``--site CODE`` supplies the site for rows (or files) without a site or grid region.

The real markets' formats (``--format tidy|ercot|entsoe|entsoe-xml|aemo``, ``--node`` naming the node or zone when
a file holds several, ``--series`` the tidy columns to read) are read by ``sites.markets.formats`` and stored by
``sites.markets.importing``: prices to the sites tied to the node (USD on the 5-minute grid, the quoted value
kept), ancillary-service prices and loads to their own tables. docs/markets.md describes each format's clock.

Every row is validated before anything is written. One bad row rejects the whole file (a CommandError naming
each bad line and why) unless ``--skip-invalid``, which writes the valid rows and lists the bad lines. All
writes happen in one transaction. Intervals already stored are left as they are, so importing a file again
writes nothing and says so ("0 new, 110 already present").
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from tqdm import tqdm

from core.db import column_field
from sites.choices import DataSource
from sites.clients.errors import SourceDataError
from sites.clients.hackathon import HackathonPriceRow, parse_decimal, parse_price_row, parse_timestamp
from sites.markets import importing
from sites.markets.formats import surplus_count
from sites.models import EnergyPrice, MarketPrice, Site
from sites.services import (
    EnergyPriceRow,
    MarketPriceRow,
    PriceRowError,
    store_energy_prices,
    store_hackathon_prices,
    store_market_prices,
)
from sites.units import INTERVAL_MINUTES

MARA_COLUMNS = ("timestamp", "energy_price", "hash_price", "token_price")
ENERGYARB_REQUIRED = ("interval_start", "price_usd_per_mwh")
ENERGYARB_MARKET = ("hashprice_usd_per_ph_day", "inference_price_usd_per_mtok")
WRITE_CHUNK_ROWS = 5000
MAX_LISTED_ERRORS = 20


class RowError(Exception):
    """One line of the file is invalid; the message says why."""


@dataclass
class Parsed:
    """Valid rows by kind, and the bad lines with their reasons."""

    hackathon: list[HackathonPriceRow] = field(default_factory=list)
    energy: list[EnergyPriceRow] = field(default_factory=list)
    market: list[MarketPriceRow] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def _field_spec(model: type[models.Model], name: str) -> dict[str, Any]:
    """Bounds and decimal places of a model field, so the file is checked by the same rule the model declares."""
    model_field = column_field(model, name)
    if not isinstance(model_field, models.DecimalField):
        raise TypeError(f"{model.__name__}.{name} is not a decimal field")
    spec: dict[str, Any] = {"places": model_field.decimal_places}
    for validator in model_field.validators:
        if isinstance(validator, MinValueValidator):
            spec["minimum"] = Decimal(str(validator.limit_value))
        elif isinstance(validator, MaxValueValidator):
            spec["maximum"] = Decimal(str(validator.limit_value))
    return spec


class Command(BaseCommand):
    help = "Import prices from a CSV file: the hackathon trace (--format mara) or energyarb's format."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="CSV file (UTF-8, header row).")
        parser.add_argument(
            "--format", required=True, choices=("mara", "energyarb", *importing.MARKET_FORMATS), dest="file_format"
        )
        parser.add_argument("--node", help="Real-market formats: the node or zone to import (and whose sites get it).")
        parser.add_argument("--series", help="tidy: comma-separated columns to import (default: every known one).")
        parser.add_argument("--skip-invalid", action="store_true", help="Write the valid rows and list the bad lines.")
        parser.add_argument("--site", metavar="CODE", help="energyarb format: site for rows without site/region.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (off anyway without a tty).")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        file_format: str = options["file_format"]
        default_site: str | None = options["site"]
        if file_format == "mara" and default_site:
            raise CommandError("--site applies to --format energyarb only: the hackathon trace is market-wide.")
        progress_out = getattr(self.stderr, "_out", sys.stderr)
        self._progress_disabled = options["no_progress"] or not progress_out.isatty()
        self._progress_out = progress_out
        if file_format in importing.MARKET_FORMATS:
            if default_site:
                raise CommandError(
                    "--site applies to --format energyarb only; real-market prices go to --node's sites."
                )
            self._handle_market(path, file_format, options)
            return
        if options["node"] or options["series"]:
            raise CommandError("--node and --series apply to the real-market formats only.")

        parsed = self._read(path, file_format, default_site)
        if parsed.errors and not options["skip_invalid"]:
            raise CommandError(
                f"{path}: {len(parsed.errors)} invalid line(s), nothing written "
                f"(--skip-invalid writes the valid rows):\n{self._list_errors(parsed.errors)}"
            )
        if parsed.errors:
            for line, reason in parsed.errors:
                self.stderr.write(f"skipped line {line}: {reason}")

        with transaction.atomic():
            if file_format == "mara":
                new = self._write(parsed.hackathon, store_hackathon_prices, DataSource.CSV_MARA, "hackathon prices")
                summary = f"hackathon prices: {new} new, {len(parsed.hackathon) - new} already present"
            else:
                new_energy = self._write(parsed.energy, store_energy_prices, DataSource.CSV, "energy prices")
                new_market = self._write(parsed.market, store_market_prices, DataSource.CSV, "market prices")
                summary = (
                    f"energy prices: {new_energy} new, {len(parsed.energy) - new_energy} already present; "
                    f"market prices: {new_market} new, {len(parsed.market) - new_market} already present"
                )
        if parsed.errors:
            lines = ", ".join(str(line) for line, _ in parsed.errors)
            summary += f"; skipped {len(parsed.errors)} invalid line(s): {lines}"
        self.stdout.write(self.style.SUCCESS(f"{path.name}: {summary}."))

    # The real markets' formats.

    def _handle_market(self, path: Path, file_format: str, options: dict[str, Any]) -> None:
        series = [name.strip() for name in options["series"].split(",")] if options["series"] else None
        if series and file_format != "tidy":
            raise CommandError("--series applies to --format tidy only.")
        try:
            result = self._read_market(path, file_format, options["node"], series)
            if result.errors and not options["skip_invalid"]:
                raise CommandError(
                    f"{path}: {len(result.errors)} invalid line(s), nothing written "
                    f"(--skip-invalid writes the valid rows):\n{self._list_errors(result.errors)}"
                )
            for line, reason in result.errors:
                self.stderr.write(f"skipped line {line}: {reason}")
            if not result.series:
                raise CommandError(
                    f"{path}: no values to import" + (f" for --node {options['node']}." if options["node"] else ".")
                )
            phrases = importing.store(result, file_format, self._write)
        except (importing.ImportRefused, PriceRowError) as exc:
            raise CommandError(f"{path}: {exc}") from None
        phrases += [f"not imported: {note}" for note in result.skipped_columns]
        if result.errors:
            phrases.append(f"skipped {len(result.errors)} invalid line(s)")
        self.stdout.write(self.style.SUCCESS(f"{path.name}: {'; '.join(phrases)}."))

    def _read_market(self, path: Path, file_format: str, node: str | None, series: list[str] | None):
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                if file_format == "entsoe-xml":
                    return importing.read(file_format, header=(), text=handle.read(), node=node)
                total = max(sum(1 for _ in handle) - 1, 0)
                handle.seek(0)
                reader = csv.DictReader(handle)
                if not reader.fieldnames:
                    raise CommandError(f"{path} is empty: expected a header row.")
                header = [name.strip() for name in reader.fieldnames]
                reader.fieldnames = header
                return importing.read(
                    file_format, header=header, rows=self._records(reader, total), node=node, series=series
                )
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise CommandError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}.") from None
        except csv.Error as exc:
            raise CommandError(f"{path}: unreadable CSV ({exc}).") from None

    # Reading and validation.

    def _read(self, path: Path, file_format: str, default_site: str | None) -> Parsed:
        try:
            handle = path.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from None
        with handle:
            try:
                total = max(sum(1 for _ in handle) - 1, 0)
                handle.seek(0)
                reader = csv.DictReader(handle)
                header = reader.fieldnames
                if not header:
                    raise CommandError(f"{path} is empty: expected a header row.")
                self._check_header(path, header, file_format, default_site)
                records = self._records(reader, total)
                if file_format == "mara":
                    return self._parse_mara(records)
                return self._parse_energyarb(records, default_site)
            except UnicodeDecodeError as exc:
                raise CommandError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}.") from None
            except csv.Error as exc:
                raise CommandError(f"{path}, line {reader.line_num}: unreadable CSV ({exc}).") from None

    def _check_header(self, path: Path, header: Sequence[str], file_format: str, default_site: str | None) -> None:
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise CommandError(f"{path}, line 1: repeated column(s) {', '.join(repeated)}.")
        required = MARA_COLUMNS if file_format == "mara" else ENERGYARB_REQUIRED
        missing = [name for name in required if name not in header]
        if file_format == "energyarb" and not default_site and "site" not in header and "grid_region" not in header:
            missing.append("site (or grid_region, or --site)")
        if missing:
            raise CommandError(f"{path}, line 1: missing column(s) {', '.join(missing)}; nothing written.")

    def _records(self, reader: csv.DictReader, total: int) -> Iterator[tuple[int, dict[str, str]]]:
        """(line number, row) for each data row; a row with a wrong number of values raises RowError lazily."""
        bar = tqdm(
            reader,
            total=total,
            unit="row",
            desc="validating",
            file=self._progress_out,
            disable=self._progress_disabled,
        )
        for raw in bar:
            yield reader.line_num, raw

    def _collect(
        self, records: Iterable[tuple[int, dict[str, str]]], parse_row: Callable[[int, Mapping[str, str]], None]
    ) -> list[tuple[int, str]]:
        errors = []
        for line, raw in records:
            try:
                if extra := surplus_count(raw):
                    raise RowError(f"{len(raw) - 1 + extra} values for {len(raw) - 1} columns")
                parse_row(line, raw)
            except (RowError, SourceDataError) as exc:
                errors.append((line, exc.message if isinstance(exc, SourceDataError) else str(exc)))
        return errors

    def _parse_mara(self, records: Iterable[tuple[int, dict[str, str]]]) -> Parsed:
        parsed = Parsed()
        first_line: dict[datetime, int] = {}

        def parse_row(line: int, raw: Mapping[str, str]) -> None:
            row = parse_price_row(raw, allow_text=True)
            if row.interval_start in first_line:
                raise RowError(
                    f"interval {row.interval_start.isoformat()} repeats line {first_line[row.interval_start]}"
                )
            first_line[row.interval_start] = line
            parsed.hackathon.append(row)

        parsed.errors = self._collect(records, parse_row)
        return parsed

    def _parse_energyarb(self, records: Iterable[tuple[int, dict[str, str]]], default_site: str | None) -> Parsed:
        parsed = Parsed()
        site_ids = dict(Site.objects.values_list("code", "pk"))
        if default_site and default_site not in site_ids:
            raise CommandError(f"--site {default_site!r}: no such site.")
        energy_spec = _field_spec(EnergyPrice, "price_usd_per_mwh")
        market_specs = {name: _field_spec(MarketPrice, name) for name in ENERGYARB_MARKET}
        region_max = column_field(EnergyPrice, "grid_region").max_length or 0
        energy_lines: dict[tuple, int] = {}
        market_lines: dict[datetime, tuple[int, MarketPriceRow]] = {}

        def parse_row(line: int, raw: Mapping[str, str]) -> None:
            if raw.get("interval_start") in (None, ""):
                raise RowError("missing interval_start")
            start = parse_timestamp(raw["interval_start"], field="interval_start", naive_is_utc=False)
            if start.minute % INTERVAL_MINUTES or start.second or start.microsecond:
                raise RowError(
                    f"interval_start {raw['interval_start']!r} is not on a {INTERVAL_MINUTES}-minute boundary"
                )
            code, region = (raw.get("site") or "").strip(), (raw.get("grid_region") or "").strip()
            if code and region:
                raise RowError("give a site or a grid_region, not both")
            code = code or ("" if region else default_site or "")
            if not code and not region:
                raise RowError("no site or grid_region")
            if code and code not in site_ids:
                raise RowError(f"unknown site {code!r}")
            if len(region) > region_max:
                raise RowError(f"grid_region {region!r} is longer than {region_max} characters")
            if raw.get("price_usd_per_mwh") in (None, ""):
                raise RowError("missing price_usd_per_mwh")
            price = parse_decimal(raw["price_usd_per_mwh"], field="price_usd_per_mwh", allow_text=True, **energy_spec)
            energy = EnergyPriceRow(
                interval_start=start, price_usd_per_mwh=price, site_id=site_ids.get(code), grid_region=region
            )

            given = {name: (raw.get(name) or "").strip() for name in ENERGYARB_MARKET}
            market = None
            if any(given.values()):
                absent = [name for name, value in given.items() if not value]
                if absent:
                    raise RowError(f"missing {', '.join(absent)} (market prices come in pairs)")
                values = {
                    name: parse_decimal(value, field=name, allow_text=True, **market_specs[name])
                    for name, value in given.items()
                }
                market = MarketPriceRow(interval_start=start, **values)
                if start in market_lines and market_lines[start][1] != market:
                    raise RowError(f"market prices differ from line {market_lines[start][0]} for the same interval")

            key = (energy.site_id, region, start)
            if key in energy_lines:
                raise RowError(f"{code or region} at {start.isoformat()} repeats line {energy_lines[key]}")
            energy_lines[key] = line
            parsed.energy.append(energy)
            if market is not None and start not in market_lines:
                market_lines[start] = (line, market)
                parsed.market.append(market)

        parsed.errors = self._collect(records, parse_row)
        return parsed

    # Writing.

    def _write(self, rows: list, store: Callable[..., int], source: str, what: str) -> int:
        new = 0
        with tqdm(
            total=len(rows),
            unit="row",
            desc=f"writing {what}",
            file=self._progress_out,
            disable=self._progress_disabled,
        ) as bar:
            for offset in range(0, len(rows), WRITE_CHUNK_ROWS):
                chunk = rows[offset : offset + WRITE_CHUNK_ROWS]
                new += store(rows=chunk, source=source)
                bar.update(len(chunk))
        return new

    @staticmethod
    def _list_errors(errors: list[tuple[int, str]]) -> str:
        listed = [f"  line {line}: {reason}" for line, reason in errors[:MAX_LISTED_ERRORS]]
        if len(errors) > MAX_LISTED_ERRORS:
            listed.append(f"  ... and {len(errors) - MAX_LISTED_ERRORS} more")
        return "\n".join(listed)

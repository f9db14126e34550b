"""Reads on the hottest paths, compiled from the ORM once per process: the one place that relies on Django internals.

Every quote and admission runs the same handful of reads (the token, the tier or the quote, the fleet with its
limits, the overlapping placements). Building and compiling their querysets cost more CPU than PostgreSQL spends
answering them, so `PreparedRead` compiles a queryset once per database vendor, with a sentinel value in place of
each parameter, remembers where the sentinels landed in the SQL's parameters, and afterwards executes the same SQL
on a plain cursor with the real values. The SQL text never changes, so psycopg prepares it on the server too
(settings: server-side binding).

The queryset is still the single definition of the read (joins, filters, column order); rows come back as tuples,
and `from_row` turns a slice of one into a model instance without the ORM's per-query machinery. Values are
normalized by `decimal` / `aware` where backends differ (SQLite hands back floats and naive datetimes where
PostgreSQL hands back Decimals and aware datetimes).

Why they are kept: `bench/api_load.py` with `DB_PREPARED_READS=0` (each read built and compiled per call, as the
ORM does) costs more server CPU per decision than with them (figures in docs/api-performance.md). Writes use the
ORM's public API (`save`, `bulk_create`, simple-history's `bulk_history_create`).

Django internals relied on, checked against CHECKED_WITH_DJANGO by tests/test_db.py (which compares every
prepared read of the app with its queryset run by the ORM, and fails on another Django version until re-checked):
`Query.sql_with_params()` and `get_compiler(...).as_sql()`, `connection.ops.adapt_datetimefield_value` and
`get_db_converters`, `Field.get_col(...).get_db_converters(connection)` (the converters the compiler applies),
`Model.from_db`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TypeVar, overload

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection, connections
from django.db.models import Field, Model, QuerySet
from django.db.models.expressions import Col
from django.db.models.signals import post_delete, post_migrate, post_save

_M = TypeVar("_M", bound=Model)
CHECKED_WITH_DJANGO = (5, 2)  # the Django (major, minor) whose internals this module was checked against
_SENTINEL_BASE_DATETIME = datetime(1901, 1, 1, tzinfo=UTC)
_SENTINEL_BASE_INT = -(2**62)


def _sentinel(kind: type, index: int):
    if kind is datetime:
        return _SENTINEL_BASE_DATETIME + timedelta(days=index)
    if kind is int:
        return _SENTINEL_BASE_INT - index
    if kind is str:
        return f"\x00sentinel-{index}\x00"
    raise TypeError(f"PreparedRead parameters are datetime, int or str, not {kind.__name__}")


class PreparedRead:
    """A read defined by `build(**sentinels)` (a QuerySet, usually `values_list`), compiled once per vendor.

    `params` maps each parameter name to its type (datetime, int or str); `build` receives one keyword per name
    and must use each exactly where the real value goes. `rows(**values)` runs it.

    `template`, when given, is SQL run around the queryset's: its `{query}` is replaced by the compiled queryset
    (for what the ORM cannot say, such as aggregating over window functions); it takes no parameters of its own.
    """

    def __init__(self, build: Callable[..., QuerySet], *, template: str = "{query}", **params: type):
        if "%" in template or template.count("{query}") != 1:
            raise ValueError("PreparedRead: a template places {query} once and takes no parameters (and no %)")
        self.build = build
        self.template = template
        self.params = params
        self._compiled: dict[str, tuple[str, list, dict[int, str]]] = {}
        self.model: type[Model] | None = None  # the queryset's model, known once compiled

    def _compile(self) -> tuple[str, list, dict[int, str]]:
        vendor = connection.vendor
        if vendor not in self._compiled or not settings.DB_PREPARED_READS:
            sentinels = {name: _sentinel(kind, i) for i, (name, kind) in enumerate(self.params.items())}
            queryset = self.build(**sentinels)
            self.model = queryset.model
            sql, params = queryset.query.sql_with_params()
            sql = self.template.replace("{query}", sql)
            adapt = connection.ops.adapt_datetimefield_value
            lookup = {
                (adapt(value) if isinstance(value, datetime) else value): name for name, value in sentinels.items()
            }
            slots = {
                i: lookup[value]
                for i, value in enumerate(params)
                if isinstance(value, str | int | datetime) and not isinstance(value, bool) and value in lookup
            }
            missing = set(self.params) - set(slots.values())
            if missing:
                raise ValueError(f"PreparedRead: the query does not use {sorted(missing)}")
            self._compiled[vendor] = (sql, list(params), slots)
        return self._compiled[vendor]

    def sql(self) -> tuple[str, list]:
        """(SQL, parameters) of a read without parameters, as compiled for this database (e.g. for the model's
        `raw()`, to get instances: `read.model`)."""
        if self.params:
            raise TypeError("PreparedRead.sql() is for reads without parameters; use rows(**values)")
        sql, params, _ = self._compile()
        return sql, list(params)

    def rows(self, **values) -> list[tuple]:
        sql, params, slots = self._compile()
        params = list(params)
        adapt = connection.ops.adapt_datetimefield_value
        for i, name in slots.items():
            value = values[name]
            params[i] = adapt(value) if isinstance(value, datetime) else value
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()


def driver_rows(queryset: QuerySet) -> list[tuple]:
    """The rows of a `values_list()` QuerySet, as tuples.

    On PostgreSQL straight from the driver: for integers, text, booleans, timestamptz, numeric and float8 psycopg
    already returns what Django would (JSON comes as text), and skipping Django's per-row converters saves about
    2 µs a row on the dashboard charts' ~1,300 rows (bench/dashboard.py). Other databases go through the ORM's own
    iterator.
    """
    db = connections[queryset.db]
    if db.vendor != "postgresql":
        return list(queryset)
    try:
        sql, params = queryset.query.get_compiler(queryset.db).as_sql()
    except EmptyResultSet:  # e.g. `site_id__in=[]`: the ORM answers without asking the database
        return []
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class LocalReadCache:
    """Rows read on every request and rarely changed (a token and its user, a tier, the fleet), kept per process for
    `settings.API_READ_CACHE_SECONDS` (0: not kept).

    A save or delete of one of `models` in this process drops every entry at once (post_save / post_delete), and
    so do migrate and flush (post_migrate); other processes see a change within the period, and so do writes
    that send no signals (QuerySet.update).
    Only rows read outside a transaction are kept: inside one they could be its own uncommitted writes, or be
    rolled back. Entries hold the rows (tuples), so no model instance is shared between requests.
    """

    def __init__(self, name: str, *, models: Iterable[type[Model]], size: int = 4096):
        self.size = size
        self._entries: dict[Hashable, tuple[float, object]] = {}
        for model in models:
            for signal in (post_save, post_delete):
                signal.connect(self._drop, sender=model, weak=False, dispatch_uid=f"{name}:{signal}:{model.__name__}")
        post_migrate.connect(self._drop, weak=False, dispatch_uid=f"{name}:post_migrate")

    def get(self, key: Hashable, load: Callable[[], object]):
        """The value kept for `key`, or `load()` (kept when it may be)."""
        seconds = settings.API_READ_CACHE_SECONDS
        if seconds <= 0 or connection.in_atomic_block:
            return load()
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = (now + seconds, value)
        return value

    def _drop(self, **kwargs) -> None:
        self._entries.clear()


def column_field(model: type[Model], name: str) -> Field:
    """The model's field `name` that has a column (validators, places); a reverse relation is refused."""
    field = model._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"{model.__name__}.{name} is a reverse relation, not a column")
    return field


def attnames(model: type[Model]) -> list[str]:
    """The model's concrete column attributes, in the order `from_row` reads them."""
    return [field.attname for field in model._meta.concrete_fields]


def related_attnames(prefix: str, model: type[Model]) -> list[str]:
    """`attnames` of a related model, as `values_list` names them through `prefix` (e.g. "tier__")."""
    return [f"{prefix}{field.name if field.is_relation else field.attname}" for field in model._meta.concrete_fields]


_CONVERTERS: dict[tuple[str, type[Model]], list[tuple[int, Col, list]]] = {}


def _converters(model: type[Model]) -> list[tuple[int, Col, list]]:
    """(column index, column, converters) of the model's fields that have any: the backend's and the field's own,
    called as the ORM's compiler calls them, with the column expression."""
    key = (connection.vendor, model)
    if key not in _CONVERTERS:
        table = model._meta.db_table
        entries = []
        for i, field in enumerate(model._meta.concrete_fields):
            column = field.get_col(table)
            converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if converters:
                entries.append((i, column, converters))
        _CONVERTERS[key] = entries
    return _CONVERTERS[key]


def from_row(model: type[_M], row: Sequence, start: int = 0) -> tuple[_M, int]:
    """An instance of `model` from `row[start:]` (columns as `attnames(model)`), and the index after it.

    Values pass the same database converters the ORM applies (JSON decoded, SQLite's floats made Decimals and its
    naive datetimes aware, ...)."""
    width = len(model._meta.concrete_fields)
    values = list(row[start : start + width])
    for i, column, converters in _converters(model):
        for convert in converters:
            values[i] = convert(values[i], column, connection)
    # field_names None: every concrete field's value is given, in order (Django reads the names only otherwise).
    return model.from_db(connection.alias, None, values), start + width  # type: ignore[arg-type]


def decimal(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


@overload
def aware(value: None) -> None: ...
@overload
def aware(value: datetime | str) -> datetime: ...
def aware(value: datetime | str | None) -> datetime | None:
    if value is None or (isinstance(value, datetime) and value.tzinfo is not None):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got the date {value}")
    return value.replace(tzinfo=UTC)

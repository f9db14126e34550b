"""Reads and inserts on the hottest paths, compiled from the ORM once per process.

Every quote and admission runs the same handful of reads (the token, the tier or the quote, the fleet with its
limits, the overlapping placements). Building and compiling their querysets cost more CPU than PostgreSQL spends
answering them, so `PreparedRead` compiles a queryset once per database vendor, with a sentinel value in place of
each parameter, remembers where the sentinels landed in the SQL's parameters, and afterwards executes the same SQL
on a plain cursor with the real values. The SQL text never changes, so psycopg prepares it on the server too
(settings: server-side binding).

`PreparedInsert` does the same for the INSERTs of new rows: the statement is built once per row count from the
model's fields, and each row's values still pass the fields' own `pre_save` / `get_db_prep_save`.

The queryset is still the single definition of the read (joins, filters, column order); rows come back as tuples,
and `from_row` turns a slice of one into a model instance without the ORM's per-query machinery. Values are
normalized by `decimal` / `aware` where backends differ (SQLite hands back floats and naive datetimes where
PostgreSQL hands back Decimals and aware datetimes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Model, QuerySet
from django.db.models.expressions import Col
from django.db.models.signals import post_delete, post_migrate, post_save

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
        if vendor not in self._compiled:
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


class PreparedInsert:
    """INSERT of new `model` rows in one statement whose SQL is built once per vendor and row count.

    What `QuerySet.bulk_create` does for models like these (an auto primary key, plain columns), without its
    per-call compilation: values come from each field's `pre_save(obj, add=True)` (auto_now_add) and
    `get_db_prep_save`, the new primary keys come back by RETURNING and are set on the objects, which are then
    saved instances. Like bulk_create, no model signals are sent: use it for models without receivers.
    """

    def __init__(self, model: type[Model]):
        meta = model._meta
        self.model = model
        self.fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
        if any(hasattr(field, "get_placeholder") for field in self.fields):
            raise TypeError(f"PreparedInsert: {model.__name__} has a field with its own SQL placeholder")
        self._sql: dict[tuple[str, int], str] = {}

    def sql(self, rows: int) -> str:
        key = (connection.vendor, rows)
        if key not in self._sql:
            meta, quote = self.model._meta, connection.ops.quote_name
            columns = ", ".join(quote(field.column) for field in self.fields)
            row = f"({', '.join(['%s'] * len(self.fields))})"
            sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {', '.join([row] * rows)}"
            if meta.auto_field is not None:
                sql += f" RETURNING {quote(meta.auto_field.column)}"
            self._sql[key] = sql
        return self._sql[key]

    def save(self, objs: Sequence[Model]) -> None:
        """Insert `objs` (new instances of the model) and set their primary keys."""
        if not objs:
            return
        fields = self.fields
        params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for obj in objs for field in fields]
        with connection.cursor() as cursor:
            cursor.execute(self.sql(len(objs)), params)
            keys = cursor.fetchall() if self.model._meta.auto_field is not None else []
        for obj, key in zip(objs, keys, strict=False):
            setattr(obj, self.model._meta.auto_field.attname, key[0])
        for obj in objs:
            obj._state.adding = False
            obj._state.db = connection.alias


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


def from_row(model: type[Model], row: Sequence, start: int = 0) -> tuple[Model, int]:
    """An instance of `model` from `row[start:]` (columns as `attnames(model)`), and the index after it.

    Values pass the same database converters the ORM applies (JSON decoded, SQLite's floats made Decimals and its
    naive datetimes aware, ...)."""
    width = len(model._meta.concrete_fields)
    values = list(row[start : start + width])
    for i, column, converters in _converters(model):
        for convert in converters:
            values[i] = convert(values[i], column, connection)
    return model.from_db(connection.alias, None, values), start + width


def decimal(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


def aware(value) -> datetime | None:
    if value is None or (isinstance(value, datetime) and value.tzinfo is not None):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got the date {value}")
    return value.replace(tzinfo=UTC)

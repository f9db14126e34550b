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
ORM does) costs more server CPU per decision than with them (figures in docs/api-performance.md).

`PreparedInsert` does the same for the INSERTs of a quote, a contract and its placements: the ORM's compiler builds
the INSERT ... RETURNING once per vendor and row count, and each call only prepares the values through the public
Field API (`pre_save(obj, add=True)`, `get_db_prep_save`) and runs the statement; the saved instances come back
through `Model.from_db` (no write to a private attribute). `PreparedBulkCreateQuerySet` runs one for a plain
`bulk_create` of a model whose rows a library builds (Contract's history rows, built by simple-history's
`bulk_history_create`), setting the given rows' primary keys as the ORM's `bulk_create` does. Other writes use the
ORM's public API (`save`, `bulk_create`).

Django internals relied on, checked against CHECKED_WITH_DJANGO by tests/test_db.py (which compares every prepared
read of the app with its queryset run by the ORM, and fails on another Django version until re-checked):
`Query.sql_with_params()` and `get_compiler(...).as_sql()`, `connection.ops.adapt_datetimefield_value` and
`get_db_converters`, `Field.get_col(...).get_db_converters(connection)` (the converters the compiler applies),
`Model.from_db`; for `statement_rows` (a driver cursor kept per connection and statement), the steps of
`BaseDatabaseWrapper._cursor` (`close_if_health_check_failed`, `ensure_connection`, `create_cursor`,
`_prepare_cursor`, `wrap_database_errors`) and `CursorWrapper.cursor`; for `PreparedInsert`:
`sql.InsertQuery(model)`, `insert_values(fields, objs)`, `get_compiler(connection=...)`, the compiler's
`returning_fields` and `as_sql()` (one statement; the parameters one per value in row order, or on PostgreSQL one
array per column for `UNNEST`), and `Field.is_cached` / `get_cached_value` (the related objects a new instance was
given); for `PreparedInsertWithChildren`, the shape of the compiled INSERTs (`INSERT INTO "table" (columns) VALUES
(...) RETURNING "table"."key"`, and PostgreSQL's several rows as `SELECT * FROM UNNEST((%s)::type[], ...)`, whose
casts it reuses): another shape is refused (`Refused`, logged once, and the separate statements are written
instead; the history row goes with them, written by simple-history's call of the history model's
`objects.bulk_create`), and tests/test_db.py fails loudly on it. tests/test_db.py compares each app's prepared
INSERT, SQL and parameters, with what `save` / `bulk_create` send, and the rows written column by column.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from decimal import Context as DecimalContext
from decimal import Decimal
from typing import Any, Generic, TypeVar, overload

from django.conf import settings
from django.core.exceptions import EmptyResultSet, FieldDoesNotExist
from django.db import DEFAULT_DB_ALIAS, connection, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, ForeignKey, Model, QuerySet
from django.db.models.expressions import Col
from django.db.models.signals import post_delete, post_migrate, post_save
from django.db.models.sql import InsertQuery
from django.utils.asyncio import async_unsafe

logger = logging.getLogger(__name__)
_M = TypeVar("_M", bound=Model)
_C = TypeVar("_C", bound=Model)
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

    `keep_cursor` (`statement_rows`' `keep`): for a read whose answer stays small whatever the size of the book (a
    token, a tier, a quote, the sites, one row per site), run on every request: its driver cursor is kept per
    connection, with its last answer. A read whose answer grows with the book (bookings, dashboard reads) keeps
    none (the default): a kept cursor would hold its last rows in every worker until it runs again.
    """

    def __init__(
        self, build: Callable[..., QuerySet], *, template: str = "{query}", keep_cursor: bool = False, **params: type
    ):
        if "%" in template or template.count("{query}") != 1:
            raise ValueError("PreparedRead: a template places {query} once and takes no parameters (and no %)")
        self.build = build
        self.template = template
        self.keep_cursor = keep_cursor
        self.params = params
        self._compiled: dict[str, tuple[str, list, dict[int, str]]] = {}
        self.model: type[Model] | None = None  # the queryset's model, known once compiled

    def _compile(self, db: BaseDatabaseWrapper | None = None) -> tuple[str, list, dict[int, str]]:
        if db is None:
            db = connections[DEFAULT_DB_ALIAS]
        vendor = db.vendor
        if vendor not in self._compiled or not settings.DB_PREPARED_READS:
            sentinels = {name: _sentinel(kind, i) for i, (name, kind) in enumerate(self.params.items())}
            queryset = self.build(**sentinels)
            self.model = queryset.model
            sql, params = queryset.query.sql_with_params()
            sql = self.template.replace("{query}", sql)
            adapt = db.ops.adapt_datetimefield_value
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
        db = connections[DEFAULT_DB_ALIAS]  # the connection itself: each use of the `connection` proxy costs a lookup
        sql, params, slots = self._compile(db)
        params = list(params)
        for i, name in slots.items():
            value = values[name]
            params[i] = db.ops.adapt_datetimefield_value(value) if isinstance(value, datetime) else value
        return statement_rows(db, sql, params, keep=self.keep_cursor)


# The driver cursors kept for `statement_rows`: DatabaseWrapper -> (the driver connection they were made on, the
# wrapper's time zone then, {statement: cursor}). Weakly kept: a wrapper gone (a thread's) drops its entry.
_KEPT_CURSORS: weakref.WeakKeyDictionary[BaseDatabaseWrapper, tuple[object, object, dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)
KEPT_CURSORS_PER_CONNECTION = 128  # more statements than the app's prepared ones: start again (bounds the memory)


def statement_rows(db: BaseDatabaseWrapper, sql: str, params: Sequence, *, keep: bool = False) -> list[tuple]:
    """The rows of one of the app's compiled statements on `db`, as `with db.cursor() as c: c.execute(sql, params);
    return c.fetchall()` returns them.

    With `keep` (the statements declared with `keep_cursor`), on PostgreSQL the driver's cursor for a statement is
    made once per connection and kept, instead of one per execution: psycopg builds each cursor with its own
    adapters map, and a cursor executing the query it executed last (the same str object, as the compiled statements
    here are) keeps its transformer, with the dumper of each parameter's type, the loader of each column's type and
    the connection's encoding already looked up; a new cursor, or another query, looks them all up again. Everything
    else is Django's, per execution: `BaseDatabaseWrapper.cursor()`'s steps (async check, health check, connection
    opened if needed, thread check, the debug wrapper when queries are logged), then `CursorWrapper.execute`
    (execute_wrappers, the broken-transaction check, errors wrapped as Django's) and the fetch with errors wrapped.
    The cursors are made again when the connection or the wrapper's time zone changed (Django's `create_cursor`
    registers the zone on its cursor), and a closed one is replaced. A kept cursor holds its statement's last result
    until it runs again. Other databases, `keep=False` (the default: a statement built anew on each call, whose text
    varies: a new cursor for it would save little and keep its rows; or one whose rows grow with the book:
    `PreparedRead`'s `keep_cursor`) and a connection shared between threads (`inc_thread_sharing`: two threads would
    share one driver cursor, and one could fetch the other's rows) use `db.cursor()`.
    """
    if not keep or db.vendor != "postgresql" or db.allow_thread_sharing:
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    cursor = _kept_cursor(db, sql)
    cursor.execute(sql, params)
    with db.wrap_database_errors:
        return cursor.cursor.fetchall()


@async_unsafe
def _kept_cursor(db: BaseDatabaseWrapper, sql: str):
    """`db.cursor()` (Django 5.2's `_cursor`) on the driver cursor kept for `sql` on db's connection."""
    db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        kept = _KEPT_CURSORS.get(db)
        if kept is None or kept[0] is not db.connection or kept[1] != db.timezone:
            kept = _KEPT_CURSORS[db] = (db.connection, db.timezone, {})
        cursors = kept[2]
        cursor = cursors.get(sql)
        if cursor is None or cursor.closed:
            if len(cursors) >= KEPT_CURSORS_PER_CONNECTION:
                cursors.clear()
            cursor = cursors[sql] = db.create_cursor()
        return db._prepare_cursor(cursor)  # type: ignore[attr-defined]  # Django 5.2's, not in the stubs


class Refused(TypeError):
    """What PreparedInsert does not do (the ORM would): raised before anything is written, leaving the transaction
    as it was."""


def _write(db: BaseDatabaseWrapper, statement: Callable[[], tuple[str, list]], keep: bool) -> list[tuple]:
    """Run the INSERT ... RETURNING that `statement()` compiles (SQL, parameters) on `db`; the rows it returns
    (`keep`: on a kept cursor, `statement_rows`).

    As the ORM's save / bulk_create: an error compiling, converting a value or writing marks the transaction for
    rollback when inside `atomic`; `Refused` (raised before anything is sent) leaves it as it was."""
    try:
        sql, params = statement()
        return statement_rows(db, sql, params, keep=keep)
    except Refused:
        raise
    except Exception:
        if db.in_atomic_block:  # the transaction must roll back
            transaction.set_rollback(True, using=db.alias)
        raise


# The instances `PreparedInsert.new` built (and `PreparedInsert.copy` copied from them), by identity, for every
# PreparedInsert of their model (PreparedInsertWithChildren's own included): written, they are given their key and
# returned as the saved instances. Weakly kept: an instance gone drops its entry (so its id cannot be mistaken).
_BUILT_TO_INSERT: weakref.WeakValueDictionary[int, Model] = weakref.WeakValueDictionary()


def _built_to_insert(obj: Model) -> bool:
    return _BUILT_TO_INSERT.get(id(obj)) is obj


class PreparedInsert(Generic[_M]):
    """New rows of `model` written as `bulk_create(objs)` / `save(force_insert=True)` write them, without
    compiling the INSERT on every call.

    The statement (INSERT ... RETURNING the primary key) is built by the ORM's own compiler, once per database
    vendor and row count, from copies of the first objects given; each call then computes the values as the
    compiler does, `field.pre_save(obj, add=True)` (auto_now / auto_now_add) then `field.get_db_prep_save`, and
    runs the statement on a plain cursor. Defaults and callable defaults are the instances' own (set when they were
    built), as for the ORM. A database error is raised as the ORM raises it (IntegrityError on a constraint), and
    inside `atomic` marks the transaction for rollback as the ORM does.

    Returns the saved instances, built by `Model.from_db` with the values written and the new primary key, and
    given the related objects `objs` held (their `tier`, `contract`, ...): use them instead of `objs`, which stay
    unsaved; an instance built by `new` (as a saved instance is) is itself returned, with its key. Like
    `bulk_create`, it sends no model signals: `tests/test_db.py` checks the receivers of each model the app inserts
    this way. Refused (TypeError) for what it does not do: models without an auto primary key,
    inheritance or `order_with_respect_to`; fields with a database default, generated or with their own SQL
    placeholder; an expression as a value; a backend without INSERT ... RETURNING of several rows. An instance
    whose primary key is set is refused (ValueError): the ORM would write that key, this always writes a new one. A
    value that fails to convert (`pre_save`, `get_db_prep_save`) marks the transaction for rollback, as in the ORM.

    `keep_cursor`, as PreparedRead's: for the few rows of a request (a quote, a contract and its placements), whose
    statement's driver cursor is kept per connection with its last answer (the new keys); not for a bulk_create of
    any size (the default).
    """

    def __init__(
        self,
        model: type[_M],
        *,
        without: Field | None = None,
        asynchronous_commit: bool = False,
        keep_cursor: bool = False,
    ):
        meta = model._meta
        if meta.auto_field is None or meta.parents or meta.order_with_respect_to:
            raise TypeError(f"PreparedInsert: {model.__name__} needs an auto primary key and no inheritance")
        self.model = model
        # `without`: a column the statement leaves out, filled in by another (PreparedInsertWithChildren's key)
        self.fields = [field for field in meta.local_concrete_fields if field not in (meta.auto_field, without)]
        refused = [f.name for f in self.fields if f.generated or f.has_db_default() or hasattr(f, "get_placeholder")]
        if refused:
            raise TypeError(f"PreparedInsert: {model.__name__}.{refused} need the ORM's insert")
        self._attnames = [field.attname for field in meta.concrete_fields]  # Model.from_db's order
        self.relations = [(field, i) for i, field in enumerate(meta.concrete_fields) if isinstance(field, ForeignKey)]
        if len(self.relations) != sum(field.is_relation for field in meta.concrete_fields):
            raise TypeError(f"PreparedInsert: {model.__name__} has a relation that is not a ForeignKey")
        self._pk_index = meta.concrete_fields.index(meta.auto_field)
        self._compiled: dict[tuple[str, int], tuple[str, bool]] = {}
        self.asynchronous_commit = asynchronous_commit
        self.keep_cursor = keep_cursor
        self._asynchronous: dict[str, str] = {}  # statement -> the same committing without a flush of its own

    def _compile(self, db: BaseDatabaseWrapper, objs: Sequence[_M]) -> tuple[str, bool]:
        """(SQL, whether its parameters are one array per column) for this many rows, as the ORM compiles them."""
        key = (db.vendor, len(objs))
        if key not in self._compiled:
            if len(objs) > 1 and not db.features.can_return_rows_from_bulk_insert:
                raise Refused(f"PreparedInsert: {db.vendor} cannot return the keys of several rows")
            query = InsertQuery(self.model)
            query.insert_values(self.fields, [copy.copy(obj) for obj in objs])
            compiler = query.get_compiler(connection=db)
            compiler.returning_fields = [self.model._meta.auto_field]
            ((sql, params),) = compiler.as_sql()
            width = len(self.fields)
            if "RETURNING" not in sql or sql.count("%s") != len(params):  # a plain placeholder for each parameter
                raise Refused(f"PreparedInsert: {db.vendor} compiles {self.model.__name__} otherwise: {sql}")
            if len(objs) > 1 and len(params) == width and all(isinstance(p, list) for p in params):
                self._compiled[key] = (sql, True)  # PostgreSQL: INSERT ... SELECT * FROM UNNEST(column arrays)
            elif len(params) == width * len(objs):
                self._compiled[key] = (sql, False)
            else:
                raise Refused(f"PreparedInsert: unexpected parameters for {self.model.__name__}: {params!r}")
        return self._compiled[key]

    def _params(self, db: BaseDatabaseWrapper, objs: Sequence[_M], columns: bool) -> list:
        """The statement's parameters for `objs`, as the ORM's compiler prepares them (and sets auto_now values)."""
        rows = [self._values(db, obj) for obj in objs]
        return [list(column) for column in zip(*rows, strict=True)] if columns else [v for row in rows for v in row]

    def _check(self, obj: _M) -> None:
        """Refuse what the ORM would refuse or what this does not do, before anything is sent; then copy each related
        object's key to its column, as save() and bulk_create() do."""
        if obj.pk is not None:  # the ORM would write that key (or update the row): this always writes a new one
            raise ValueError(f"PreparedInsert: {obj!r} already has a primary key ({obj.pk!r}); use the ORM")
        for relation, _ in self.relations:
            related = relation.get_cached_value(obj) if relation.is_cached(obj) else None
            if related is not None:
                target = getattr(related, relation.target_field.attname)
                if target is None:
                    raise ValueError(f"PreparedInsert: {obj!r} has the unsaved related object {relation.name!r}")
                if getattr(obj, relation.attname) in relation.empty_values:
                    setattr(obj, relation.attname, target)

    def _values(self, db: BaseDatabaseWrapper, obj: _M) -> list:
        values = []
        for field in self.fields:
            value = field.pre_save(obj, True)
            if hasattr(value, "resolve_expression"):
                raise Refused(f"PreparedInsert: {field.name} is an expression; use the ORM")
            values.append(field.get_db_prep_save(value, db))
        return values

    def insert(self, objs: Sequence[_M]) -> list[_M]:
        """Write `objs` (new instances) in one statement; their saved instances, in order."""
        if not objs:
            return []
        db = connections[DEFAULT_DB_ALIAS]  # the connection itself: each use of the `connection` proxy costs a lookup
        keys = self.keys(db, objs)
        return [self._saved(db.alias, obj, key) for obj, key in zip(objs, keys, strict=True)]

    def keys(self, db: BaseDatabaseWrapper, objs: Sequence[_M]) -> list:
        """Write `objs` (new instances, at least one) on `db` in one statement; their new primary keys, in order.
        The instances get no key (PreparedBulkCreateQuerySet sets it, `insert` returns saved copies)."""
        for obj in objs:
            self._check(obj)

        def statement() -> tuple[str, list]:
            sql, columns = self._compile(db, objs)
            if self.asynchronous_commit and db.vendor == "postgresql" and not db.in_atomic_block:
                sql = self._committed_asynchronously(db, sql)
            return sql, self._params(db, objs, columns)

        return [row[0] for row in _write(db, statement, self.keep_cursor)]

    def _committed_asynchronously(self, db: BaseDatabaseWrapper, sql: str) -> str:
        """`sql` setting `synchronous_commit` off for its own transaction only, when it is one: in autocommit, the
        statement is its transaction, and PostgreSQL reads the setting when it commits, right after it; the
        session's setting is back at the end of it (`set_config(..., true)` is `SET LOCAL`). Inside a transaction
        (atomic, or autocommit turned off) the statement as it is: the setting would hold for the whole transaction.

        The call goes in the RETURNING list (`RETURNING "table"."key", set_config(...)`: evaluated for the row
        written, no round trip of its own); an INSERT in another shape is written as it is (logged once)."""
        if not db.get_autocommit():
            return sql
        unflushed = self._asynchronous.get(sql)
        if unflushed is None:
            if _RETURNING_KEY.search(sql):
                unflushed = f"{sql}, set_config('synchronous_commit', 'off', true)"
            else:
                logger.warning("PreparedInsert: %s's INSERT does not end with RETURNING its key; committed with a "
                               "flush of its own: %s", self.model.__name__, sql)  # fmt: skip
                unflushed = sql
            self._asynchronous[sql] = unflushed
        return unflushed

    def new(self, **values) -> _M:
        """A new instance to write: what `model(**values)` builds (a field left out takes its default; a related
        object given by its field's name sets the key and is kept as the related object; an unknown name is a
        TypeError), built by `Model.from_db` as a saved instance is, so that `insert` gives it its key and returns
        it instead of building a saved copy: one instance, one `Model.__init__`. Until it is written it has no
        key; written by the ORM (`save`) instead, it is inserted too (no key: no UPDATE to try)."""
        row, related = [], []
        for field in self.model._meta.concrete_fields:
            if isinstance(field, ForeignKey) and field.name in values:  # (the only relations __init__ allows)
                other = values.pop(field.name)
                related.append((field, other))
                row.append(None if other is None else getattr(other, field.target_field.attname))
            elif field.attname in values:
                row.append(values.pop(field.attname))
            else:
                row.append(values.pop(field.name) if field.name in values else field.get_default())
        if values:
            raise TypeError(f"{self.model.__name__} has no field named {sorted(values)}")
        obj = self.model.from_db(DEFAULT_DB_ALIAS, None, row)  # type: ignore[arg-type]
        for field, other in related:
            setattr(obj, field.name, other)  # as Model.__init__ sets a related object given by name
        _BUILT_TO_INSERT[id(obj)] = obj
        return obj

    def copy(self, obj: _M) -> _M:
        """`copy.copy(obj)`, for another attempt at writing it (the first one rolled back); a copy of an instance
        `new` built is written as that instance is: given its key and returned as the saved one."""
        duplicate = copy.copy(obj)
        if _built_to_insert(obj):
            _BUILT_TO_INSERT[id(duplicate)] = duplicate
        return duplicate

    def _saved(self, alias: str, obj: _M, pk) -> _M:
        if _built_to_insert(obj) and alias == DEFAULT_DB_ALIAS:  # built by `new`: the saved one itself
            obj.pk = pk
            return obj
        values = [getattr(obj, attname) for attname in self._attnames]
        values[self._pk_index] = pk
        saved = self.model.from_db(alias, None, values)  # type: ignore[arg-type]
        for field, index in self.relations:  # the related objects `obj` was given, if they are the ones written
            if field.is_cached(obj):
                related = field.get_cached_value(obj)
                if related is not None and getattr(related, field.target_field.attname) == values[index]:
                    setattr(saved, field.name, related)
        return saved


class PreparedInsertWithChildren(Generic[_M, _C]):
    """A new row of `parent` and new rows of `child` pointing at it through the foreign key `key`, as
    `PreparedInsert(parent).insert([obj])` then `PreparedInsert(child).insert(children)` (each child's key set to
    the new parent) write them, in one statement on PostgreSQL, compiled once per process and number of children:

        WITH parent AS (<the parent's INSERT ... RETURNING its key>),
        children AS (INSERT INTO <child> (<key>, <columns>) SELECT parent.<key>, given.* FROM parent,
                     (VALUES (%s::<type>, ...), ...) AS given RETURNING <child key>)
        SELECT parent.<key>, children.<key> FROM parent, children ORDER BY children.<key>

    Both INSERTs are the ORM compiler's: the parent's as it is, the children's table, columns (the key's left out)
    and the type of each column as the compiler casts them in its `INSERT ... SELECT * FROM UNNEST` of several rows
    (the type without its length: no silent truncation, an overlong value fails as in the ORM's INSERT). The values
    are given one per placeholder, row after row, not one array per column: psycopg dumps a list ~10x slower than as
    many plain values. Other databases (no INSERT in WITH) run the two statements (three with `history`: the
    history row's INSERT after them); so does PostgreSQL when the ORM compiles the INSERTs in a shape this does not
    know (`Refused` at compile time: logged once, then the separate statements every time). An error (the parent's
    unique quote, a child's constraint) writes nothing and marks the transaction for rollback, as PreparedInsert.

    The saved children are paired with the rows given by their new keys, sorted: the i-th smallest key is the i-th
    row given. SQL promises neither the order rows are inserted in nor RETURNING's; this relies on what PostgreSQL
    does with this statement, checked by tests/test_db.py
    (`test_the_new_keys_are_drawn_in_the_order_the_rows_are_given`): (1) the INSERT reads `parent` (one row) and
    the VALUES list in a nested loop, with nothing between them and the INSERT that reorders rows (no sort, hash or
    parallel node: there is no join condition, ORDER BY or aggregate to call for one), and a Values Scan emits its
    rows in list order; (2) the INSERT evaluates each row's key default (the identity column's `nextval`) as the
    row reaches it, so keys are drawn in that order; (3) the sequence counts up without cycling (Django's identity
    column: INCREMENT 1, NO CYCLE), and `nextval` returns ever larger values within a session whatever other
    sessions draw (they may take keys in between: the keys need not be consecutive). Pairing by a row ordinal
    instead (the keys drawn with `nextval` next to it and written explicitly) was measured and not kept: ~30-65 µs
    more PostgreSQL CPU per purchase (docs/api-performance.md).

    With `history` (a simple-history model of `parent` whose `objects` is a PreparedBulkCreateQuerySet), the parent's
    history row joins the statement: `history AS (INSERT INTO <history> (<copy of the parent's key>, <columns>)
    SELECT parent.<key>, given.* FROM parent, (VALUES (...)) AS given RETURNING <its key>)`, its columns and casts
    the ORM's as for the children. The row is still built by the library (`insert(..., history=...)`): its
    `objects.bulk_create` is held back while the library builds it from the saved parent (`_held`), and only its
    writing moves here. A bulk_create that is not plain (options, keys, another database) writes as before, after
    the one statement of the parent and its children; so does a history row whose statement's shape alone is
    refused, and the row of a history model with simple-history's `history_relation` (`related_name`: a second
    column the library fills from the parent's key, which the statement does not give it).
    `keep_cursor`: as PreparedInsert's, for the one statement.

    Returns the saved parent and the saved children (Model.from_db), each child with the saved parent as `key`.
    `children` are given without that key (it is unsaved); at least one.
    """

    def __init__(
        self,
        parent: type[_M],
        child: type[_C],
        key: str,
        *,
        history: type[Model] | None = None,
        keep_cursor: bool = False,
    ):
        field = child._meta.get_field(key)
        if not (isinstance(field, ForeignKey) and field.related_model is parent and field.target_field.primary_key):
            raise TypeError(
                f"PreparedInsertWithChildren: {child.__name__}.{key} is no foreign key to {parent.__name__}"
            )
        self.key = field
        self.keep_cursor = keep_cursor
        self.parent = PreparedInsert(parent, keep_cursor=keep_cursor)
        self.child = PreparedInsert(child, without=field)  # the statement for the children, the key left out
        self.separately = PreparedInsert(child, keep_cursor=keep_cursor)  # on other databases
        self.history_model = history  # its rows written by the history model's bulk_create
        self.history: PreparedInsert | None = None  # the history row's statement, the parent's key left out
        self.copied: Field | None = None  # the history model's copy of the parent's key
        if history is not None:
            self.copied = copied = column_field(history, parent._meta.pk.attname)  # simple-history: a plain column
            if copied.is_relation or not isinstance(history._default_manager.all(), PreparedBulkCreateQuerySet):
                raise TypeError(
                    f"PreparedInsertWithChildren: {history.__name__} is no history model of {parent.__name__} "
                    "written through a PreparedBulkCreateQuerySet (its objects)"
                )
            if not _has_field(history, "history_relation"):  # else written after the statement, by its bulk_create
                self.history = PreparedInsert(history, without=copied)
        self._compiled: dict[tuple[str, int, bool], str | None] = {}  # None: refused, the separate statements

    def _compile(self, db: BaseDatabaseWrapper, obj: _M, children: Sequence[_C], history: bool = False) -> str | None:
        """The one statement for this many children (and the history row, if `history`), or None where the ORM's
        INSERTs are not in the expected shape (logged once per vendor: the separate statements are written instead,
        or with `history` the one without the history row, then the row by its own)."""
        key = (db.vendor, len(children), history)
        if key not in self._compiled:
            try:
                self._compiled[key] = self._statement(db, obj, children, history)
            except Refused as refused:
                if not any(sql is None and vendor == db.vendor for (vendor, _, _), sql in self._compiled.items()):
                    written = "in one statement, the history row after it" if history else "in separate statements"
                    logger.warning("%s; writing %s and its %s %s", refused, self.parent.model.__name__,
                                   self.child.model.__name__, written)  # fmt: skip
                self._compiled[key] = None
        return self._compiled[key]

    def _statement(self, db: BaseDatabaseWrapper, obj: _M, children: Sequence[_C], history: bool = False) -> str:
        parent_sql, _ = self.parent._compile(db, [obj])
        if not _INSERT.fullmatch(parent_sql):
            raise Refused(f"PreparedInsertWithChildren: unexpected statements {parent_sql!r}")
        quote = db.ops.quote_name
        parent_key = quote(str(self.parent.model._meta.pk.column))
        child_key = f"children.{quote(str(self.child.model._meta.pk.column))}"
        parts = [f"WITH parent AS ({parent_sql})", _keyed("children", db, self.child, self.key, children, parent_key)]
        selected, tables = f"parent.{parent_key}, {child_key}", "parent, children"
        if history and self.history is not None and self.copied is not None:
            record = self.history.model
            blank = record()  # for the statement's shape only: its columns and their casts
            parts.append(_keyed("history", db, self.history, self.copied, [blank], parent_key))
            selected += f", history.{quote(str(record._meta.pk.column))}"
            tables += ", history"
        return f"{', '.join(parts)} SELECT {selected} FROM {tables} ORDER BY {child_key}"

    def insert(
        self, obj: _M, children: Sequence[_C], *, history: Callable[[_M], object] | None = None
    ) -> tuple[_M, list[_C]]:
        """Write `obj` and `children` (new instances, at least one child, without the key); their saved instances.

        `history(saved)` (with the constructor's `history` model) builds the parent's history row from the saved
        parent and hands it to the history model's `objects.bulk_create`, as simple-history's
        `bulk_history_create([saved], ...)` does. On PostgreSQL it is called before the write, with the saved parent
        but its key: the one row it hands over is held back there (unwritten) and written by the same statement,
        with the parent's key in its copy of it; then the saved parent, the row's copy and the row's own key are
        set, as bulk_create sets them. Elsewhere, on a shape refused, or where the routers send the history model's
        writes to another database, `history(saved)` is called after the parent and its children are written, and
        its bulk_create writes, as before."""
        if not children:
            raise ValueError("PreparedInsertWithChildren: no child to write")
        record = self.history
        if history is not None and self.history_model is None:
            raise TypeError("PreparedInsertWithChildren: history rows need the constructor's history model")
        db = connections[DEFAULT_DB_ALIAS]
        if not db.features.can_return_rows_from_bulk_insert or db.vendor != "postgresql":
            return self._separately(obj, children, history)
        self.parent._check(obj)
        for child in children:
            self.child._check(child)
        if self._compile(db, obj, children) is None:
            return self._separately(obj, children, history)
        together = record is not None and history is not None and router.db_for_write(record.model) == db.alias
        together = together and self._compile(db, obj, children, True) is not None  # else the row written after
        try:
            return self._one_statement(db, obj, children, history, together)
        except Refused:  # the history row not handed over as a plain bulk_create: nothing was sent
            return self._one_statement(db, obj, children, history, False)

    def _one_statement(
        self, db: BaseDatabaseWrapper, obj: _M, children: Sequence[_C], history, together: bool
    ) -> tuple[_M, list[_C]]:
        """The one statement, with the history row that `history` builds (`together`) or followed by `history`."""
        record = self.history
        pending: list[_M] = []  # with `together`: the saved parent, its key to come
        rows: list[Model] = []  # and the history rows built from it

        def statement() -> tuple[str, list]:
            params = self.parent._params(db, [obj], False) + self.child._params(db, children, False)
            if together and record is not None:
                pending.append(self.parent._saved(db.alias, obj, None))
                rows.extend(_held(record.model, functools.partial(history, pending[0])))
                if len(rows) == 1:
                    record._check(rows[0])
                    params += record._params(db, rows, False)
            return self._compiled[(db.vendor, len(children), len(rows) == 1)] or "", params

        keys = _write(db, statement, self.keep_cursor)
        saved = pending[0] if pending else self.parent._saved(db.alias, obj, keys[0][0])
        saved.pk = keys[0][0]
        self._history_written(saved, rows, keys, None if together else history)
        return saved, self._children_of(db.alias, saved, children, [row[1] for row in keys])

    def _history_written(self, saved: _M, rows: list[Model], keys: list[tuple], history) -> None:
        """The history rows after the parent's write: the one written with it gets the parent's key and its own;
        others (not one row handed over) are written now by the history model's bulk_create; `history` (rows
        not held back) is called now."""
        if self.history is not None and self.copied is not None:
            for row in rows:
                setattr(row, self.copied.attname, saved.pk)
            if len(rows) == 1:
                rows[0].pk = keys[0][2]
            elif rows:
                self.history.model._default_manager.bulk_create(rows)  # simple-history's objects
        if history is not None:
            history(saved)

    def _children_of(self, alias: str, saved: _M, children: Sequence[_C], keys: list) -> list[_C]:
        rows = []
        for child, key in zip(children, keys, strict=True):
            setattr(child, self.key.attname, saved.pk)
            row = self.child._saved(alias, child, key)
            setattr(row, self.key.name, saved)
            rows.append(row)
        return rows

    def _separately(
        self, obj: _M, children: Sequence[_C], history: Callable[[_M], object] | None = None
    ) -> tuple[_M, list[_C]]:
        (saved,) = self.parent.insert([obj])
        for child in children:
            setattr(child, self.key.name, saved)
        placed = self.separately.insert(children)
        if history is not None:
            history(saved)
        return saved, placed


def _keyed(
    name: str, db: BaseDatabaseWrapper, insert: PreparedInsert, key: Field, rows: Sequence[Model], parent_key: str
) -> str:
    """`<name> AS (INSERT INTO <table> (<key>, <columns>) SELECT parent.<parent_key>, given.* FROM parent,
    (VALUES (%s::<type>, ...), ...) AS given RETURNING <its key>)` for as many rows as `rows`: the table, columns
    (the key's left out) and casts of the ORM's several-row INSERT of `insert.model` (Refused in another shape)."""
    sql, columns = insert._compile(db, [rows[0], copy.copy(rows[0])])  # several rows: UNNEST
    match = _INSERT.fullmatch(sql)
    types = _UNNEST_TYPES.findall(match["rows"]) if match else []
    if not (columns and match and len(types) == len(insert.fields)):
        raise Refused(f"PreparedInsertWithChildren: unexpected statements {sql!r}")
    row = "(" + ", ".join(f"%s::{db_type}" for db_type in types) + ")"
    return (
        f"{name} AS (INSERT INTO {match['table']} ({db.ops.quote_name(str(key.column))}, {match['columns']}) "
        f"SELECT parent.{parent_key}, given.* FROM parent, (VALUES {', '.join([row] * len(rows))}) AS given "
        f"RETURNING {match['returning']})"
    )


_HELD: ContextVar[tuple[type[Model], list[Model]] | None] = ContextVar("core.db held bulk_create", default=None)


def _held(model: type[Model], build: Callable[[], object]) -> list[Model]:
    """The rows `build()` hands to `model.objects.bulk_create` (a PreparedBulkCreateQuerySet), held back unwritten
    (the given instances, still without keys) for the caller to write. A bulk_create of `model` meanwhile that is
    not plain (options, keys, another database) raises Refused: nothing is written."""
    held: list[Model] = []
    token = _HELD.set((model, held))
    try:
        build()
    finally:
        _HELD.reset(token)
    return held


_INSERT = re.compile(
    r'INSERT INTO (?P<table>"[^"]+") \((?P<columns>[^()]+)\) (?P<rows>.+) RETURNING (?P<returning>"[^"]+"\."[^"]+")',
    re.DOTALL,
)
_RETURNING_KEY = re.compile(r' RETURNING "[^"]+"\."[^"]+"\Z')
# The ORM's several-row INSERT on PostgreSQL: SELECT * FROM UNNEST((%s)::bigint[], (%s)::numeric[], ...), one array
# per column cast to the column's type without its length.
_UNNEST_TYPES = re.compile(r"\(%s\)::([a-z][a-z ]*)\[\]")


class PreparedBulkCreateQuerySet(QuerySet):
    """A QuerySet whose plain `bulk_create(objs)` of new instances runs a `PreparedInsert` of its model: the same
    statement, values and rows, without compiling the INSERT on every call.

    For a model whose rows are written by a library through `Model.objects.bulk_create`, such as
    django-simple-history's `bulk_history_create` for a historical model (`HistoricalRecords(bases=[...])` gives
    it this manager): the library still builds every row and its values. Anything else, and any option
    (`batch_size`, conflicts), an instance with a primary key, another database or what PreparedInsert refuses,
    goes to the ORM's own `bulk_create`, unchanged.

    As the ORM's `bulk_create` (Django's documented contract): the given instances are written, each gets its new
    primary key (`obj.pk = key`, the public attribute; the ORM sets it the same way, as the returned column's
    attname), and the list of them is returned, the same instances in the same order; no model signal is sent (no
    instance is built). What differs, because only private attributes hold it and app code writes none
    (tests/test_supported_apis.py): the ORM also marks each instance saved, `_state.adding = False` and
    `_state.db = <the database>`; here they keep `adding=True` and `db=None`, as when they were built. What reads
    them: `full_clean()`'s unique checks would not exclude the row itself (a history model has no unique field
    but its key), and `save()` of such an instance still UPDATEs its row (its key is set, and an auto key has no
    default) on the database the routers choose (`db=None`: the routers' answer, here "default", where it was
    written); on one database nothing else does. simple-history's `bulk_history_create` returns the list to its
    caller and reads neither.
    """

    _prepared: dict[type[Model], PreparedInsert] = {}

    def bulk_create(self, objs, batch_size=None, ignore_conflicts=False, update_conflicts=False, update_fields=None,
                    unique_fields=None):  # fmt: skip
        objs = list(objs)
        options = batch_size is not None or ignore_conflicts or update_conflicts or update_fields or unique_fields
        # Where the ORM's bulk_create writes: the queryset's database, else the routers' for writes (`self.db`
        # answers for reads here: bulk_create makes the queryset one for writes only once called).
        using = self._db or router.db_for_write(self.model)
        plain = not options and using == DEFAULT_DB_ALIAS and all(obj.pk is None for obj in objs)
        held = _HELD.get()
        if held is not None and held[0] is self.model:  # PreparedInsertWithChildren writes them (core.db._held)
            if not plain:
                raise Refused(f"{self.model.__name__}.objects.bulk_create: not a plain bulk_create of new rows")
            held[1].extend(objs)
            return objs
        if objs and plain:
            try:
                keys = self._prepared_insert().keys(connections[DEFAULT_DB_ALIAS], objs)
            except Refused:
                pass  # refused before anything was sent: the ORM writes them
            else:
                for obj, key in zip(objs, keys, strict=True):
                    obj.pk = key
                return objs
        return super().bulk_create(objs, batch_size, ignore_conflicts, update_conflicts, update_fields, unique_fields)

    def _prepared_insert(self) -> PreparedInsert:
        prepared = self._prepared.get(self.model)
        if prepared is None:
            prepared = self._prepared[self.model] = PreparedInsert(self.model)
        return prepared


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
    return statement_rows(db, sql, params, keep=False)  # compiled per call: a new query, nothing kept


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


def _has_field(model: type[Model], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


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


def _converters(model: type[Model], db: BaseDatabaseWrapper) -> list[tuple[int, Col, list]]:
    """(column index, column, converters) of the model's fields that have any on `db`: the backend's and the
    field's own, called as the ORM's compiler calls them, with the column expression."""
    key = (db.vendor, model)
    if key not in _CONVERTERS:
        table = model._meta.db_table
        entries = []
        for i, field in enumerate(model._meta.concrete_fields):
            column = field.get_col(table)
            converters = db.ops.get_db_converters(column) + column.get_db_converters(db)
            if converters:
                entries.append((i, column, converters))
        _CONVERTERS[key] = entries
    return _CONVERTERS[key]


def from_row(model: type[_M], row: Sequence, start: int = 0) -> tuple[_M, int]:
    """An instance of `model` from `row[start:]` (columns as `attnames(model)`), and the index after it.

    Values pass the same database converters the ORM applies (JSON decoded, SQLite's floats made Decimals and its
    naive datetimes aware, ...)."""
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself, as the ORM's compiler passes it to converters
    width = len(model._meta.concrete_fields)
    values = list(row[start : start + width])
    for i, column, converters in _converters(model, db):
        for convert in converters:
            values[i] = convert(values[i], column, db)
    # field_names None: every concrete field's value is given, in order (Django reads the names only otherwise).
    return model.from_db(db.alias, None, values), start + width  # type: ignore[arg-type]


_SQLITE_DIGITS = DecimalContext(prec=15)  # SQLite keeps 15 significant digits: the rest of a float is its inaccuracy


def decimal(value) -> Decimal:
    """A number read by hand as the ORM's converters read it: Decimals as they are, a float (SQLite's sums and
    annotations) cut to SQLite's 15 significant digits, as its DecimalField converter does, so 1019.9999999999999
    reads 1020 by hand as through the ORM."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return _SQLITE_DIGITS.create_decimal_from_float(value)
    return Decimal(str(value or 0))


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

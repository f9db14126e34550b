"""`core.db`: reads compiled once and run with new values, and rows turned into model instances."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connections
from django.db.models.signals import post_init

from core.db import LocalReadCache, PreparedInsert, PreparedRead, attnames, from_row
from optimizer.models import OptimizationRun
from sites.models import Site
from sla.models import Contract, Placement, Quote
from sla.services import CapacityRequest, create_contract_from_quote, create_quote
from sla.services.admission import QUOTE_INSERT
from tests.factories import (
    T0,
    CustomerFactory,
    OptimizationRunFactory,
    PlacementFactory,
    SiteFactory,
    TierFactory,
)
from tests.sla.conftest import build_fleet

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)


def placements_between(start, end):
    return Placement.objects.filter(valid_from__lt=end, valid_to__gt=start, site__code="oslo").values_list("pk")


def test_a_prepared_read_answers_like_its_queryset_for_every_value():
    oslo, dublin = SiteFactory(code="oslo"), SiteFactory(code="dublin")
    early = PlacementFactory(site=oslo, valid_from=T0, valid_to=T0 + 2 * H)
    late = PlacementFactory(site=oslo, valid_from=T0 + 3 * H, valid_to=T0 + 5 * H)
    PlacementFactory(site=dublin, valid_from=T0, valid_to=T0 + 5 * H)
    read = PreparedRead(placements_between, start=type(T0), end=type(T0))

    for start, end, expected in [
        (T0, T0 + H, {early.pk}),
        (T0 + H, T0 + 4 * H, {early.pk, late.pk}),
        (T0 + 2 * H, T0 + 3 * H, set()),  # half-open windows: touching is not overlapping
    ]:
        assert {pk for (pk,) in read.rows(start=start, end=end)} == expected
        assert {pk for (pk,) in placements_between(start, end)} == expected


def test_a_parameter_the_query_does_not_use_is_refused_at_compile_time():
    read = PreparedRead(lambda start, end: Placement.objects.filter(valid_from__lt=end).values_list("pk"),
                        start=type(T0), end=type(T0))  # fmt: skip

    with pytest.raises(ValueError, match="does not use \\['start'\\]"):
        read.rows(start=T0, end=T0 + H)


def test_from_row_builds_the_instance_the_orm_would():
    run = OptimizationRunFactory(revenue_usd_per_h=Decimal("1234.5600"), inputs={"sites": {"oslo": {"pue": 1.1}}})
    read = PreparedRead(
        lambda pk: OptimizationRun.objects.filter(pk=pk).values_list(*attnames(OptimizationRun)), pk=int
    )

    (row,) = read.rows(pk=run.pk)
    built, end = from_row(OptimizationRun, row)
    stored = OptimizationRun.objects.get(pk=run.pk)

    assert end == len(attnames(OptimizationRun))
    assert built.pk == run.pk and built.inputs == {"sites": {"oslo": {"pue": 1.1}}}  # JSON decoded
    assert built.revenue_usd_per_h == stored.revenue_usd_per_h == Decimal("1234.5600")  # Decimal on SQLite too
    assert built.queued_at == stored.queued_at and built.queued_at.tzinfo is not None
    assert not read.rows(pk=run.pk + 1)


def test_a_prepared_read_and_each_instance_built_from_its_row_look_the_connection_up_once(monkeypatch):
    """Every use of `django.db.connection` (a proxy) looks the connection up in `connections` (asgiref's Local,
    ~1.5 µs a time): a prepared read and `from_row` take the connection once and use it."""
    run = OptimizationRunFactory(inputs={"sites": {"oslo": {"pue": 1.1}}})  # a JSON column: a converter to call
    read = PreparedRead(
        lambda pk, start: OptimizationRun.objects.filter(pk=pk, queued_at__gt=start).values_list(
            *attnames(OptimizationRun)
        ),
        pk=int,
        start=datetime,
    )
    read.rows(pk=run.pk, start=T0 - 1000 * H)  # compiled
    handler = type(connections)
    lookups = []
    original = handler.__getitem__
    monkeypatch.setattr(handler, "__getitem__", lambda self, alias: lookups.append(alias) or original(self, alias))

    (row,) = read.rows(pk=run.pk, start=T0 - 1000 * H)
    assert len(lookups) == 1
    built, _ = from_row(OptimizationRun, row)
    assert len(lookups) == 2
    assert built.inputs == {"sites": {"oslo": {"pue": 1.1}}}


@pytest.mark.django_db(transaction=True)
def test_a_local_read_cache_keeps_rows_for_its_period_and_drops_them_on_a_save(settings, monkeypatch):
    settings.API_READ_CACHE_SECONDS = 5
    clock = [1000.0]
    monkeypatch.setattr("core.db.time.monotonic", lambda: clock[0])
    cache = LocalReadCache("test-sites", models=(Site,))
    site = SiteFactory(code="oslo", name="Oslo")
    read = lambda: Site.objects.filter(code="oslo").values_list("name", flat=True).get()  # noqa: E731

    assert cache.get("oslo", read) == "Oslo"
    Site.objects.filter(pk=site.pk).update(name="Oslo (renamed)")  # no signal: kept for its period
    assert cache.get("oslo", read) == "Oslo"
    clock[0] += 5
    assert cache.get("oslo", read) == "Oslo (renamed)"
    site.name = "Oslo North"
    site.save()  # a signal: dropped at once
    assert cache.get("oslo", read) == "Oslo North"


def test_a_local_read_cache_keeps_nothing_read_inside_a_transaction(settings):
    settings.API_READ_CACHE_SECONDS = 5
    cache = LocalReadCache("test-sites-atomic", models=(Site,))
    reads = []

    for _ in range(2):
        cache.get("oslo", lambda: reads.append(1))

    assert len(reads) == 2  # the test runs in a transaction that is rolled back


# The driver cursors core.db keeps per connection and statement (PostgreSQL): each execution is still Django's.


def _on_postgresql():
    from django.db import DEFAULT_DB_ALIAS, connections

    connection = connections[DEFAULT_DB_ALIAS]  # the wrapper itself, as the app's code passes it
    if connection.vendor != "postgresql":
        pytest.skip("the driver cursors are kept on PostgreSQL only")
    return connection


@pytest.fixture
def executions():
    """(SQL, parameters, the driver cursor) of every execution on the connection, as its execute_wrappers see it."""
    connection = _on_postgresql()
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append((sql, list(params or ()), context["cursor"].cursor))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield seen


def _driver_cursors(executions, sql):
    cursors = []
    for statement, _, cursor in executions:
        if statement == sql and not any(cursor is kept for kept in cursors):
            cursors.append(cursor)
    return cursors


def test_a_statement_run_again_keeps_its_driver_cursor_and_every_execution_is_still_djangos(executions):
    from django.test.utils import CaptureQueriesContext

    connection = _on_postgresql()
    placement = PlacementFactory(site=SiteFactory(code="oslo"), valid_from=T0, valid_to=T0 + H)
    read = PreparedRead(placements_between, keep_cursor=True, start=type(T0), end=type(T0))

    assert read.rows(start=T0, end=T0 + H) == [(placement.pk,)]  # the cursor made outside what follows
    sql, _, cursor = executions[-1]
    transformer = getattr(cursor, "_tx", None)  # psycopg's (private) adaptation state, checked if it has one
    with CaptureQueriesContext(connection) as captured:
        for _ in range(3):
            assert read.rows(start=T0, end=T0 + H) == [(placement.pk,)]
        assert read.rows(start=T0 + 3 * H, end=T0 + 4 * H) == []

    assert _driver_cursors(executions, sql) == [cursor]  # one per execution before
    assert not cursor.closed
    assert transformer is None or cursor._tx is transformer  # psycopg-private: kept while the same query runs again
    ours = [(statement, params) for statement, params, _ in executions if statement == sql]
    assert len(captured) == 4 and len(ours) == 5  # the debug cursor and execute_wrappers see every execution
    assert ours[-1][1] != ours[-2][1]  # with its values


def test_kept_cursors_answer_what_djangos_cursor_answers_when_the_time_zone_changes(executions, settings):
    from core.db import statement_rows

    connection = _on_postgresql()
    sql = "SELECT %s::timestamptz"

    def djangos():
        with connection.cursor() as cursor:
            cursor.execute(sql, [T0])
            return cursor.fetchall()

    assert statement_rows(connection, sql, [T0], keep=True) == djangos() == [(T0,)]
    settings.USE_TZ = False  # Django's create_cursor registers the connection's zone (now none) on each cursor
    naive = statement_rows(connection, sql, [T0], keep=True)
    assert naive == djangos() and naive[0][0].tzinfo is None  # a cursor kept from before would answer aware


@pytest.mark.django_db(transaction=True)
def test_kept_cursors_are_made_again_on_a_new_connection_and_for_a_closed_cursor(executions):
    from core.db import statement_rows

    connection = _on_postgresql()
    sql = "SELECT %s::int"
    assert statement_rows(connection, sql, [1], keep=True) == [(1,)]
    connection.close()
    assert statement_rows(connection, sql, [2], keep=True) == [(2,)]  # on the new connection
    executions[-1][2].close()
    assert statement_rows(connection, sql, [3], keep=True) == [(3,)]
    assert statement_rows(connection, sql, [4], keep=True) == [(4,)]
    assert len(_driver_cursors(executions, sql)) == 3


def test_the_rows_of_a_queryset_compiled_per_call_keep_no_cursor(executions):
    """driver_rows compiles its queryset on each call: nothing to gain from a kept cursor but the rows it would hold."""
    from core.db import driver_rows

    SiteFactory(code="oslo")
    for _ in range(2):
        assert driver_rows(Site.objects.filter(code="oslo").values_list("code")) == [("oslo",)]
    cursors = [cursor for _, _, cursor in executions[-2:]]
    assert cursors[0] is not cursors[1] and all(cursor.closed for cursor in cursors)


@pytest.mark.django_db(transaction=True)
def test_each_threads_connection_keeps_cursors_of_its_own():
    """Connections are per thread (gunicorn's gthread workers, Celery threads), and so are the cursors kept for
    them: two threads running the same statement in turns each get their own back."""
    import threading

    from django.db import connections

    from core.db import statement_rows

    _on_postgresql()
    turns = [threading.Event() for _ in range(4)]
    cursors: dict[str, list] = {"a": [], "b": []}

    def run(name, mine):
        connection = connections["default"]  # this thread's

        def wrapper(execute, sql, params, many, context):
            cursors[name].append(context["cursor"].cursor)
            return execute(sql, params, many, context)

        try:
            with connection.execute_wrapper(wrapper):
                for turn in mine:  # a, b, a, b
                    turns[turn].wait(10)
                    assert statement_rows(connection, "SELECT %s::int", [turn], keep=True) == [(turn,)]
                    if turn + 1 < len(turns):
                        turns[turn + 1].set()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=("a", (0, 2))), threading.Thread(target=run, args=("b", (1, 3)))]
    for thread in threads:
        thread.start()
    turns[0].set()
    for thread in threads:
        thread.join()

    (a, a_again), (b, b_again) = cursors["a"], cursors["b"]
    assert a is a_again and b is b_again  # kept for each thread's connection, though the other ran in between
    assert a is not b


def test_reads_whose_answer_grows_with_the_book_hold_no_rows_after_they_ran(executions):
    """A kept driver cursor holds its statement's last answer until it runs again: only the hot path's reads whose
    answer stays small (the sites and their limits, one row of peaks per site) keep theirs; the bookings (every
    placement in a window, fleet-wide or on a plan's sites) and the dashboard's reads leave none held."""
    from optimizer.dashboard.reads import _placements_at, _static_rows
    from sla.api.parsers import TOKEN_READ
    from sla.api.serializers import QUOTE_READ, TIER_READ
    from sla.services.admission import load_bookings, load_window_peaks, read_fleet

    _on_postgresql()
    oslo, dublin = SiteFactory(code="oslo"), SiteFactory(code="dublin")
    for site in (oslo, dublin):
        PlacementFactory(site=site, valid_from=T0, valid_to=T0 + H)

    def driver_cursor(run):
        before = len(executions)
        run()
        ((_, _, cursor),) = executions[before:]
        return cursor

    rooms = read_fleet(lock=False).rooms
    growing = [
        lambda: load_bookings(rooms, start=T0, end=T0 + H),
        lambda: load_bookings(rooms, start=T0, end=None),
        lambda: load_bookings(rooms, start=T0, end=T0 + H, only=[oslo.pk, dublin.pk]),
        lambda: _static_rows("placements-at", _placements_at, now=T0),
    ]
    for run in growing:
        cursor = driver_cursor(run)
        assert cursor.closed and cursor.pgresult is None  # its rows freed at once
    small = [
        lambda: TOKEN_READ.rows(key="no such token"),
        lambda: TIER_READ.rows(code="gold"),
        lambda: QUOTE_READ.rows(pk=1, customer=1),
        lambda: read_fleet(lock=False),
        lambda: load_window_peaks(rooms, start=T0, end=T0 + H),
    ]
    for run in small:
        cursor = driver_cursor(run)
        assert not cursor.closed and cursor.pgresult is not None and driver_cursor(run) is cursor  # kept


def test_a_connection_shared_between_threads_shares_no_driver_cursor():
    """With `inc_thread_sharing` a wrapper is used by two threads: a kept cursor would be one driver cursor for both,
    and a thread running the statement between another's execute and fetch would take its answer."""
    import threading

    from core.db import statement_rows

    connection = _on_postgresql()
    sql = "SELECT %s::int"
    answers: dict[str, list] = {}
    others: list[threading.Thread] = []

    def other_thread():
        answers["b"] = statement_rows(connection, sql, [2], keep=True)

    def between_execute_and_fetch(execute, statement, params, many, context):
        result = execute(statement, params, many, context)
        if not others:  # the first thread's execution (the other's goes through here too)
            thread = threading.Thread(target=other_thread)
            others.append(thread)
            thread.start()
            thread.join()
        return result

    connection.inc_thread_sharing()
    try:
        with connection.execute_wrapper(between_execute_and_fetch):
            answers["a"] = statement_rows(connection, sql, [1], keep=True)
    finally:
        connection.dec_thread_sharing()
    assert answers == {"a": [(1,)], "b": [(2,)]}
    assert statement_rows(connection, sql, [3], keep=True) == [(3,)]  # and kept again once the sharing ends


def test_a_kept_cursor_raises_djangos_errors_and_runs_again_after_them(executions):
    from django.db import DataError, transaction
    from django.db.transaction import TransactionManagementError

    from core.db import statement_rows

    connection = _on_postgresql()
    sql = "SELECT 10 / %s::int"
    with transaction.atomic():
        with pytest.raises(DataError), transaction.atomic():  # Django's, wrapped as its cursor wraps psycopg's
            statement_rows(connection, sql, [0], keep=True)
        assert statement_rows(connection, sql, [5], keep=True) == [(2,)]  # the same kept cursor, after the error
        transaction.set_rollback(True)
        with pytest.raises(TransactionManagementError):  # Django's broken-transaction check, per execution
            statement_rows(connection, sql, [5], keep=True)
    assert len(_driver_cursors(executions, sql)) == 1


# The app's prepared reads against the ORM: core.db relies on Django internals (its docstring lists them); these
# fail loudly when an upgrade changes them, by comparing each read of the app with its queryset run by the ORM.


def test_core_db_was_checked_against_the_installed_django():
    import django

    from core.db import CHECKED_WITH_DJANGO

    assert django.VERSION[:2] == CHECKED_WITH_DJANGO, (
        f"Django {django.get_version()}: re-check the internals core.db relies on (its docstring), run this module, "
        "then update core.db.CHECKED_WITH_DJANGO"
    )


def _the_app_reads():
    """Every PreparedRead of the hot paths with values that find rows, next to the instance they should build."""
    from rest_framework.authtoken.models import Token

    from sla.api.parsers import TOKEN_READ
    from sla.api.serializers import QUOTE_READ, TIER_READ
    from sla.models import Quote
    from sla.services.admission import BOOKINGS_READ, FLEET_READS, OPEN_ENDED_BOOKINGS_READ, SOME_SITES_READS
    from tests.factories import (
        CustomerFactory,
        HardwareModelFactory,
        MarketPriceFactory,
        SiteInventoryFactory,
        UserFactory,
    )

    customer = CustomerFactory(user=UserFactory())
    token = Token.objects.create(user=customer.user)
    placement = PlacementFactory(valid_from=T0, valid_to=T0 + H, capacity_kw=Decimal("12.345"))
    SiteInventoryFactory(site=placement.site, hardware_model=HardwareModelFactory(inference=True))
    MarketPriceFactory(interval_start=T0)
    tier = placement.contract.tier
    price = dict.fromkeys(("token_price_usd_per_mtok", "tokens_per_s_per_kw", "base_value_usd_per_kwh",
                           "tier_multiplier", "utilization_pct", "utilization_factor", "price_usd_per_kwh",
                           "total_usd"), Decimal("1.25"))  # fmt: skip
    quote = Quote.objects.create(customer=customer, tier=tier, capacity_kw=Decimal("5"), starts_at=T0,
                                 ends_at=T0 + H, token_price_source="market", valid_until=T0 + H,
                                 sites=[{"site": "oslo", "capacity_kw": "5"}], **price)  # fmt: skip
    return [
        (TOKEN_READ, {"key": token.key}),
        (TIER_READ, {"code": tier.code}),
        (QUOTE_READ, {"pk": quote.pk, "customer": customer.pk}),
        (FLEET_READS[False], {}),
        (SOME_SITES_READS[1], {"site_0": placement.site_id}),
        (BOOKINGS_READ, {"start": T0, "end": T0 + H}),
        (OPEN_ENDED_BOOKINGS_READ, {"start": T0}),
    ]


def test_every_prepared_read_of_the_app_answers_like_its_queryset_run_by_the_orm():
    from django.db import transaction

    with transaction.atomic():  # FLEET_READS[True] and SOME_SITES_READS lock: inside a transaction, as admission
        for read, values in _the_app_reads():
            prepared = read.rows(**values)
            by_orm = list(read.build(**values))
            assert prepared, f"{read.build} found nothing: the comparison would prove nothing"
            if read.model is not None and read.template == "{query}" and len(prepared[0]) >= len(attnames(read.model)):
                built = from_row(read.model, prepared[0])[0]
                stored = read.model._default_manager.get(pk=built.pk)
                assert [getattr(built, name) for name in attnames(read.model)] == [
                    getattr(stored, name) for name in attnames(read.model)
                ]
            assert [_as_orm(row, orm_row) for row, orm_row in zip(prepared, by_orm, strict=True)] == by_orm


def _as_orm(row: tuple, orm_row: tuple) -> tuple:
    """A driver row with what the ORM's converters do and the app does after `from_row` or by hand: JSON text
    decoded, SQLite's floats as the ORM's Decimals, naive datetimes aware (core.db.decimal / aware)."""
    import json

    from core.db import aware, decimal

    out = []
    for value, orm_value in zip(row, orm_row, strict=True):
        if isinstance(value, str) and not isinstance(orm_value, str):
            value = json.loads(value)
        elif isinstance(orm_value, Decimal):
            value = decimal(value)
        elif isinstance(orm_value, datetime):
            value = aware(value)
        out.append(value)
    return tuple(out)


# The app's prepared INSERTs (core.db.PreparedInsert) against the ORM's save / bulk_create: the same statement with
# the same values, the same rows, the same saved instances, the same errors; these fail loudly when Django's
# compiler, a model's fields or its signal receivers change.


def _commerce():
    """What a quote, a contract and its placements need: a customer, a tier, two sites."""
    from tests.factories import CustomerFactory, TierFactory, UserFactory

    customer = CustomerFactory(user=UserFactory())
    return customer, TierFactory(), SiteFactory(code="oslo"), SiteFactory(code="dublin")


def _new_quote(customer, tier):
    from sla.models import Quote

    price = dict.fromkeys(("token_price_usd_per_mtok", "tokens_per_s_per_kw", "base_value_usd_per_kwh",
                           "tier_multiplier", "utilization_pct", "utilization_factor", "price_usd_per_kwh",
                           "total_usd"), Decimal("1.25"))  # fmt: skip
    return Quote(
        customer=customer,
        tier=tier,
        capacity_kw=Decimal("5"),
        starts_at=T0,
        ends_at=T0 + H,
        token_price_source="market",
        valid_until=T0 + H,
        sites=[{"site": "oslo", "capacity_kw": "5"}],
        **price,
    )  # fmt: skip (base_rate, price per kW-month, cancellation fee, created_at: defaults)


def _new_contract(customer, tier, quote=None):
    from sla.models import Contract

    return Contract(customer_id=customer.pk, tier=tier, capacity_kw=Decimal("5"), starts_at=T0, ends_at=T0 + H,
                    quoted_price_usd_per_kwh=Decimal("0.5"), quoted_total_usd=Decimal("2.5"), quote=quote,
                    status_changed_at=T0, status_reason="admitted", admitted_at=T0)  # fmt: skip


def _new_placements(contract, *sites):
    return [Placement(contract=contract, site=site, capacity_kw=Decimal("2.5"), valid_from=T0, valid_to=T0 + H,
                      reason="admitted") for site in sites]  # fmt: skip


def _inserts(queries) -> list[str]:
    return [query["sql"] for query in queries if query["sql"].startswith("INSERT")]


def _columns(instance) -> list:
    """Every column of `instance`'s row as stored, but its primary key."""
    model = type(instance)
    names = [name for name in attnames(model) if name != model._meta.pk.attname]
    return list(model._default_manager.filter(pk=instance.pk).values_list(*names).get())


def test_every_prepared_insert_of_the_app_sends_what_the_orm_sends_and_writes_the_same_rows(monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from sla.services.admission import CONTRACT_INSERT, PLACEMENT_INSERT, QUOTE_INSERT

    monkeypatch.setattr(timezone, "now", lambda: T0)  # auto_now_add: the same created_at on both sides
    customer, tier, oslo, dublin = _commerce()
    contract = CONTRACT_INSERT.insert([_new_contract(customer, tier)])[0]
    cases = [
        (QUOTE_INSERT, lambda: [_new_quote(customer, tier)], lambda objs: objs[0].save(force_insert=True)),
        (
            CONTRACT_INSERT,
            lambda: [_new_contract(customer, tier)],
            lambda objs: type(objs[0]).objects.bulk_create(objs),
        ),
    ]
    for sites in ([oslo], [oslo, dublin], [oslo, dublin, oslo]):  # one row, and several (UNNEST on PostgreSQL)
        cases.append(
            (PLACEMENT_INSERT, functools.partial(_new_placements, contract, *sites), Placement.objects.bulk_create)
        )

    for insert, build, by_orm in cases:
        orm_objs, our_objs = build(), build()
        with CaptureQueriesContext(connection) as orm_queries:
            by_orm(orm_objs)
        with CaptureQueriesContext(connection) as our_queries:
            saved = insert.insert(our_objs)

        assert _inserts(our_queries.captured_queries) == _inserts(orm_queries.captured_queries), insert.model
        assert len(our_queries.captured_queries) == 1  # the INSERT alone, as the ORM inside a transaction
        assert [_columns(obj) for obj in saved] == [_columns(obj) for obj in orm_objs]
        for ours, theirs in zip(saved, orm_objs, strict=True):
            assert ours.pk is not None and ours.pk != theirs.pk and isinstance(ours.pk, type(theirs.pk))
            assert [getattr(ours, f) for f in attnames(insert.model)[1:]] == [
                getattr(theirs, f) for f in attnames(insert.model)[1:]
            ]
            assert (
                (ours._state.adding, ours._state.db) == (theirs._state.adding, theirs._state.db) == (False, "default")
            )


def test_a_prepared_insert_returns_saved_instances_with_the_related_objects_they_were_given(
    django_assert_num_queries,
):
    from sla.services.admission import CONTRACT_INSERT, PLACEMENT_INSERT, QUOTE_INSERT

    customer, tier, oslo, dublin = _commerce()
    (quote,) = QUOTE_INSERT.insert([_new_quote(customer, tier)])
    (contract,) = CONTRACT_INSERT.insert([_new_contract(customer, tier, quote=quote)])
    placements = PLACEMENT_INSERT.insert(_new_placements(contract, oslo, dublin))

    with django_assert_num_queries(0):
        assert (quote.customer, quote.tier, contract.tier, contract.quote) == (customer, tier, tier, quote)
        assert quote.contract is contract  # the one-to-one's other side, as assigning it sets it
        assert [(p.contract, p.site) for p in placements] == [(contract, oslo), (contract, dublin)]
    stored = type(quote).objects.get(pk=quote.pk)  # auto_now_add and the callable default, as written
    assert (quote.created_at, quote.cancellation_fee_pct) == (stored.created_at, stored.cancellation_fee_pct)
    assert quote.created_at is not None


def test_a_prepared_insert_fails_as_the_orm_does_and_marks_the_transaction_for_rollback():
    from django.db import IntegrityError, transaction

    from sla.services.admission import CONTRACT_INSERT, QUOTE_INSERT

    customer, tier, _, _ = _commerce()
    (quote,) = QUOTE_INSERT.insert([_new_quote(customer, tier)])
    CONTRACT_INSERT.insert([_new_contract(customer, tier, quote=quote)])

    with pytest.raises(IntegrityError), transaction.atomic():  # the unique Contract.quote: a second buyer
        try:
            CONTRACT_INSERT.insert([_new_contract(customer, tier, quote=quote)])
        finally:
            assert transaction.get_rollback()
    broken = _new_quote(customer, tier)
    broken.ends_at = T0  # the check constraint ends_after_start
    with pytest.raises(IntegrityError), transaction.atomic():
        QUOTE_INSERT.insert([broken])


def test_a_value_that_fails_to_convert_marks_the_transaction_for_rollback_as_in_the_orm():
    """DecimalField.get_db_prep_save raising ValidationError inside `atomic`: the ORM's bulk_create (and save)
    mark the transaction for rollback, and so does a prepared insert, compiled or not yet."""
    from django.core.exceptions import ValidationError
    from django.db import transaction

    from core.db import PreparedInsert
    from sla.models import Quote
    from sla.services.admission import QUOTE_INSERT

    customer, tier, _, _ = _commerce()
    QUOTE_INSERT.insert([_new_quote(customer, tier)])  # compiled: the error comes from the values
    for insert in (Quote.objects.bulk_create, QUOTE_INSERT.insert, PreparedInsert(Quote).insert):
        broken = _new_quote(customer, tier)
        broken.capacity_kw = "five"
        with pytest.raises(ValidationError), transaction.atomic():
            try:
                insert([broken])
            finally:
                assert transaction.get_rollback(), insert
    assert Quote.objects.count() == 1


def test_a_prepared_insert_refuses_an_instance_whose_primary_key_is_set():
    """The ORM would write that key; a prepared insert always writes a new one, so it refuses rather than replace it
    (before, the row got a new key and the given one was silently dropped)."""
    from sla.models import Quote
    from sla.services.admission import QUOTE_INSERT

    customer, tier, _, _ = _commerce()
    keyed = _new_quote(customer, tier)
    keyed.pk = 987654
    with pytest.raises(ValueError, match="already has a primary key"):
        QUOTE_INSERT.insert([_new_quote(customer, tier), keyed])
    assert not Quote.objects.exists()


def test_a_prepared_insert_refuses_what_it_does_not_do_as_the_orm():
    from django.db.models.functions import Now

    from sla.models import Quote
    from sla.services.admission import PLACEMENT_INSERT, QUOTE_INSERT

    customer, tier, oslo, _ = _commerce()
    expression = _new_quote(customer, tier)
    expression.valid_until = Now()
    with pytest.raises(TypeError, match="valid_until is an expression"):
        QUOTE_INSERT.insert([expression])
    unsaved = _new_placements(_new_contract(customer, tier), oslo)
    with pytest.raises(ValueError, match="unsaved related object 'contract'"):
        PLACEMENT_INSERT.insert(unsaved)
    assert not Quote.objects.exists() and not Placement.objects.exists()


def test_the_models_inserted_without_signals_have_no_receiver_that_would_miss_them():
    """PreparedInsert sends no pre_save / post_save (as bulk_create): a receiver added to one of these models
    would silently miss its rows. Contract's only one is simple-history's, whose row admission writes itself
    (bulk_history_create)."""
    from django.db.models.signals import post_save, pre_save
    from simple_history.models import HistoricalRecords

    from sla.services.admission import CONTRACT_INSERT, PLACEMENT_INSERT, QUOTE_INSERT

    for insert in (QUOTE_INSERT, CONTRACT_INSERT, PLACEMENT_INSERT):
        for signal in (pre_save, post_save):
            receivers = [r for group in signal._live_receivers(insert.model) for r in group]
            history = [r for r in receivers if isinstance(getattr(r, "__self__", None), HistoricalRecords)]
            expected = 1 if (insert.model.__name__, signal) == ("Contract", post_save) else 0
            assert len(history) == expected and receivers == history, (insert.model, signal, receivers)


def _placements_without_contract(*sites):
    """New placements of different sizes (to pair them with their rows), given without their contract."""
    return [Placement(site=site, capacity_kw=Decimal(i + 1), valid_from=T0, valid_to=T0 + (i + 1) * H,
                      reason=f"admitted {i}") for i, site in enumerate(sites)]  # fmt: skip


def _two_prepared_inserts(customer, tier, *sites):
    """A contract and its placements on `sites` as CONTRACT_INSERT then PLACEMENT_INSERT (the ORM's statements)
    write them: the saved contract and placements."""
    from sla.services.admission import CONTRACT_INSERT, PLACEMENT_INSERT

    (contract,) = CONTRACT_INSERT.insert([_new_contract(customer, tier)])
    given = _placements_without_contract(*sites)
    for placement in given:
        placement.contract = contract
    return contract, PLACEMENT_INSERT.insert(given)


def test_a_contract_and_its_placements_in_one_statement_write_what_two_prepared_inserts_write(monkeypatch):
    """core.db.PreparedInsertWithChildren: the contract and its placements as CONTRACT_INSERT then PLACEMENT_INSERT
    (the ORM's statements) write them, every column, in one statement on PostgreSQL, each saved placement paired
    with its own row and holding the saved contract."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from sla.models import Contract
    from sla.services.admission import CONTRACT_WITH_PLACEMENTS_INSERT

    monkeypatch.setattr(timezone, "now", lambda: T0)  # auto_now_add: the same created_at on both sides
    customer, tier, oslo, dublin = _commerce()
    for sites in ([oslo], [oslo, dublin], [dublin, oslo, dublin]):
        theirs, their_placements = _two_prepared_inserts(customer, tier, *sites)
        with CaptureQueriesContext(connection) as queries:
            ours, our_placements = CONTRACT_WITH_PLACEMENTS_INSERT.insert(
                _new_contract(customer, tier), _placements_without_contract(*sites)
            )

        assert len(queries.captured_queries) == (1 if connection.vendor == "postgresql" else 2)
        if connection.vendor == "postgresql":  # one value per placeholder: psycopg dumps a list ~10x slower
            assert (
                "UNNEST" not in queries.captured_queries[0]["sql"] and "(VALUES (" in queries.captured_queries[0]["sql"]
            )
        assert _columns(ours) == _columns(theirs) and ours.pk != theirs.pk and not ours._state.adding
        stored = list(Placement.objects.filter(contract=ours).order_by("pk"))
        assert [p.pk for p in our_placements] == [p.pk for p in stored] and len(stored) == len(sites)
        for mine, row, their in zip(our_placements, stored, their_placements, strict=True):
            assert _columns(mine)[1:] == _columns(row)[1:] == _columns(their)[1:]  # all but the contract
            assert (row.contract_id, mine.contract, mine.site) == (ours.pk, ours, row.site)
            # held / spot are the database's (sla 0013's triggers): an instance holds what it was given, as after the
            # ORM's save(); the rows' values are checked against the joins in tests/sla/test_placement_held.py
            names = [f for f in attnames(Placement) if f not in ("held", "spot")]
            assert [getattr(mine, f) for f in names] == [getattr(row, f) for f in names]
            assert (mine._state.adding, mine._state.db) == (False, "default")
    assert Contract.objects.count() == 6


def test_a_contract_and_its_placements_in_one_statement_fail_as_the_orm_does_and_write_nothing():
    from django.db import DataError, IntegrityError, connection, transaction

    from core.db import PreparedInsertWithChildren
    from sla.models import Contract, Quote
    from sla.services.admission import CONTRACT_WITH_PLACEMENTS_INSERT, QUOTE_INSERT

    customer, tier, oslo, dublin = _commerce()
    (quote,) = QUOTE_INSERT.insert([_new_quote(customer, tier)])
    CONTRACT_WITH_PLACEMENTS_INSERT.insert(
        _new_contract(customer, tier, quote=quote), _placements_without_contract(oslo)
    )
    broken = _placements_without_contract(oslo, dublin)
    broken[1].capacity_kw = Decimal("0")  # the check constraint capacity_positive
    overlong = _placements_without_contract(oslo, dublin)
    overlong[0].reason = "x" * 201  # varchar(200): refused as by the ORM's INSERT, never cut by a cast
    cases = [
        (_new_contract(customer, tier, quote=quote), _placements_without_contract(oslo, dublin), IntegrityError),
        (_new_contract(customer, tier), broken, IntegrityError),
    ]
    if connection.vendor == "postgresql":  # SQLite does not check a varchar's length
        cases.append((_new_contract(customer, tier), overlong, DataError))
    for contract, placements, error in cases:
        with pytest.raises(error), transaction.atomic():
            try:
                CONTRACT_WITH_PLACEMENTS_INSERT.insert(contract, placements)
            finally:
                assert transaction.get_rollback()
    assert (Contract.objects.count(), Placement.objects.count()) == (1, 1)
    with pytest.raises(ValueError, match="no child"):
        CONTRACT_WITH_PLACEMENTS_INSERT.insert(_new_contract(customer, tier), [])
    with pytest.raises(TypeError, match="no foreign key to Quote"):
        PreparedInsertWithChildren(Quote, Placement, "contract")


def test_the_orms_inserts_have_the_shape_the_one_statement_expects():
    """Loud on another Django version: the ORM compiles the contract's and the placements' INSERTs in the shape
    PreparedInsertWithChildren builds its one statement from (on other shapes it writes two statements, logged)."""
    from django.db import connection

    from sla.services.admission import CONTRACT_WITH_PLACEMENTS_INSERT as INSERT

    if connection.vendor != "postgresql":
        pytest.skip("one statement on PostgreSQL only")
    customer, tier, oslo, dublin = _commerce()
    for sites in ([oslo], [oslo, dublin]):
        children = _placements_without_contract(*sites)
        for child in children:
            INSERT.child._check(child)
        sql = INSERT._statement(connection, _new_contract(customer, tier), children)  # Refused otherwise
        assert sql.startswith("WITH parent AS (INSERT INTO") and sql.count("%s::") == len(INSERT.child.fields) * len(
            sites
        )
        with_history = INSERT._statement(connection, _new_contract(customer, tier), children, True)
        assert with_history.startswith(sql.split(" SELECT parent.")[0])
        assert 'history AS (INSERT INTO "sla_historicalcontract" ("id", ' in with_history
        assert with_history.count("%s::") == len(INSERT.child.fields) * len(sites) + len(INSERT.history.fields)


def test_a_shape_the_one_statement_does_not_expect_writes_the_two_statements_and_logs_it_once(monkeypatch, caplog):
    """Refused at compile time (the ORM's INSERT in another shape): the contract and its placements are written as
    CONTRACT_INSERT then PLACEMENT_INSERT write them, the same rows, and the refusal is logged once."""
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    import core.db
    from core.db import PreparedInsertWithChildren
    from sla.models import Contract

    monkeypatch.setattr(timezone, "now", lambda: T0)
    monkeypatch.setattr(core.db, "_INSERT", re.compile(r"a shape no Django compiles"))
    insert = PreparedInsertWithChildren(Contract, Placement, "contract")
    customer, tier, oslo, dublin = _commerce()
    for sites in ([oslo, dublin], [dublin], [dublin, oslo, dublin]):
        theirs, their_placements = _two_prepared_inserts(customer, tier, *sites)
        with CaptureQueriesContext(connection) as queries:
            ours, our_placements = insert.insert(_new_contract(customer, tier), _placements_without_contract(*sites))

        assert [query["sql"] for query in queries.captured_queries] == _inserts(queries.captured_queries)
        assert len(queries.captured_queries) == 2 and _columns(ours) == _columns(theirs) and ours.pk != theirs.pk
        stored = list(Placement.objects.filter(contract=ours).order_by("pk"))
        assert [p.pk for p in our_placements] == [p.pk for p in stored] and len(stored) == len(sites)
        for mine, their in zip(our_placements, their_placements, strict=True):
            assert _columns(mine)[1:] == _columns(their)[1:]  # all but the contract
            assert (mine.contract, _columns(mine)[0]) == (ours, ours.pk)
    refusals = [r for r in caplog.records if "PreparedInsertWithChildren: unexpected statements" in r.getMessage()]
    assert len(refusals) == (1 if connection.vendor == "postgresql" else 0)


def _plan_nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_the_new_keys_are_drawn_in_the_order_the_rows_are_given():
    """Loud on another PostgreSQL or Django: PreparedInsertWithChildren pairs the saved placements with the rows
    given by their new keys, sorted (its docstring says why that holds). The INSERT of the placements reads the one
    parent row and the VALUES list in a nested loop, through nodes that keep the VALUES order (no sort, hash or
    parallel node), and the keys' sequence counts up without cycling."""
    from django.db import connection

    from sla.services.admission import CONTRACT_WITH_PLACEMENTS_INSERT as INSERT

    if connection.vendor != "postgresql":
        pytest.skip("one statement on PostgreSQL only")
    customer, tier, oslo, dublin = _commerce()
    contract, children = _new_contract(customer, tier), _placements_without_contract(oslo, dublin, oslo)
    INSERT.parent._check(contract)
    for child in children:
        INSERT.child._check(child)
    sql = INSERT._compile(connection, contract, children, True)  # the purchase's: with the history row
    assert sql is not None
    params = INSERT.parent._params(connection, [contract], False) + INSERT.child._params(connection, children, False)
    params += INSERT.history._params(connection, [_history_row(contract, customer.user)], False)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)  # planned, not run
        ((plan,),) = cursor.fetchall()
        cursor.execute(
            "SELECT increment_by, cycle FROM pg_sequences "
            "WHERE format('%I.%I', schemaname, sequencename) = pg_get_serial_sequence('sla_placement', 'id')"
        )
        assert cursor.fetchall() == [(1, False)]
    (insert,) = [
        node
        for node in _plan_nodes(plan[0]["Plan"])
        if node["Node Type"] == "ModifyTable" and node.get("Relation Name") == "sla_placement"
    ]
    below = list(_plan_nodes(insert))[1:]
    assert {node["Node Type"] for node in below} <= {"Nested Loop", "CTE Scan", "Values Scan", "Result", "Materialize"}
    assert [node["Node Type"] for node in below].count("Values Scan") == 1
    assert not any(node.get("Parallel Aware") for node in below)


def _history_row(contract, user):
    """A history row of `contract` as simple-history's bulk_history_create builds it (unsaved)."""
    from sla.models import HistoricalContract

    tracked = {field.attname: getattr(contract, field.attname) for field in HistoricalContract.tracked_fields}
    return HistoricalContract(history_date=T0, history_type="+", history_change_reason="admitted", history_user=user,
                              **tracked)  # fmt: skip


def test_contracts_history_rows_are_built_by_simple_history_and_written_as_the_orm_writes_them(monkeypatch):
    """simple-history's bulk_history_create builds each row (user, reason, date, tracked columns) and hands it to the
    history model's objects.bulk_create (core.db.PreparedBulkCreateQuerySet, through HistoricalRecords' `bases`):
    the same INSERT, the same row column by column and the same signals as the ORM's QuerySet.bulk_create, without
    compiling the INSERT for each row."""
    from django.db import connection
    from django.db.models import QuerySet, signals
    from django.db.models.sql.compiler import SQLInsertCompiler
    from django.test.utils import CaptureQueriesContext
    from simple_history import signals as history_signals

    from core.db import PreparedBulkCreateQuerySet
    from sla.models import Contract, HistoricalContract
    from sla.services.admission import CONTRACT_INSERT

    customer, tier, _, _ = _commerce()
    (contract,) = CONTRACT_INSERT.insert([_new_contract(customer, tier)])
    compiled, sent = [], []
    as_sql = SQLInsertCompiler.as_sql
    monkeypatch.setattr(SQLInsertCompiler, "as_sql", lambda self: compiled.append(self.query.model) or as_sql(self))
    watched = [signals.pre_init, signals.post_init, signals.pre_save, signals.post_save,
               history_signals.pre_create_historical_record, history_signals.post_create_historical_record]  # fmt: skip
    for signal in watched:
        signal.connect(lambda signal, **kwargs: sent.append(signal), sender=HistoricalContract, weak=False,
                       dispatch_uid="test-history-signals")  # fmt: skip

    def write():
        compiled.clear()
        sent.clear()
        with CaptureQueriesContext(connection) as queries:
            (row,) = Contract.history.bulk_history_create(
                [contract], default_user=customer.user, default_change_reason="admitted (quote 7)", default_date=T0
            )
        return row, list(compiled), list(sent), queries.captured_queries

    try:
        write()  # the first write of the process compiles the statement
        ours, our_compiles, our_signals, our_queries = write()
        monkeypatch.setattr(PreparedBulkCreateQuerySet, "bulk_create", QuerySet.bulk_create)  # the ORM's own
        theirs, orm_compiles, orm_signals, orm_queries = write()
    finally:
        for signal in watched:
            signal.disconnect(sender=HistoricalContract, dispatch_uid="test-history-signals")

    assert (our_compiles, orm_compiles) == ([], [HistoricalContract])
    assert _inserts(our_queries) == _inserts(orm_queries) and len(our_queries) == 1
    assert _columns(ours) == _columns(theirs) and ours.pk != theirs.pk
    written = (ours.id, ours.history_type, ours.history_change_reason, ours.history_date, ours.history_user)
    assert written == (contract.pk, "+", "admitted (quote 7)", T0, customer.user)
    # simple-history builds the row (pre_init, post_init); neither write sends save or history signals, nor builds
    # another instance (the given row is the one returned, its key set).
    assert orm_signals == [signals.pre_init, signals.post_init]
    assert our_signals == orm_signals


def test_a_bulk_create_of_history_rows_that_a_prepared_insert_does_not_do_is_the_orms():
    """Options, or a row whose key is set, go to the ORM's QuerySet.bulk_create unchanged (it saves the given rows in
    place)."""
    from sla.models import HistoricalContract
    from sla.services.admission import CONTRACT_INSERT

    customer, tier, _, _ = _commerce()
    (contract,) = CONTRACT_INSERT.insert([_new_contract(customer, tier)])
    for options in ({"batch_size": 1}, {"ignore_conflicts": False, "batch_size": 5}):
        rows = [_history_row(contract, customer.user)]
        assert HistoricalContract.objects.bulk_create(rows, **options) == rows and rows[0].pk is not None
    keyed = _history_row(contract, customer.user)
    keyed.pk = 987654
    assert HistoricalContract.objects.bulk_create([keyed]) == [keyed] and not keyed._state.adding
    assert HistoricalContract.objects.filter(id=contract.pk).count() == 3


def test_a_plain_bulk_create_of_history_rows_keeps_the_orms_contract(monkeypatch):
    """Django's bulk_create (the ORM's, and the prepared one of core.db.PreparedBulkCreateQuerySet): it returns the
    given instances, in order, each with the primary key of the row written for it, and builds no other instance
    (no pre_init / post_init). What differs (private attributes, documented in the class) is not asserted."""
    from django.db.models import QuerySet, signals

    from core.db import PreparedBulkCreateQuerySet
    from sla.models import HistoricalContract
    from sla.services.admission import CONTRACT_INSERT

    customer, tier, _, _ = _commerce()
    (contract,) = CONTRACT_INSERT.insert([_new_contract(customer, tier)])
    built = []
    signals.post_init.connect(lambda **kwargs: built.append(kwargs["instance"]), sender=HistoricalContract,
                              weak=False, dispatch_uid="test-history-built")  # fmt: skip
    try:
        for orm in (False, True):
            if orm:
                monkeypatch.setattr(PreparedBulkCreateQuerySet, "bulk_create", QuerySet.bulk_create)
            rows = [_history_row(contract, customer.user), _history_row(contract, customer.user)]
            rows[1].history_change_reason = "the second"  # to pair each row with its own
            given = list(rows)
            built.clear()
            returned = HistoricalContract.objects.bulk_create(iter(rows))
            assert built == [] and len(returned) == 2, orm
            assert all(mine is theirs for mine, theirs in zip(returned, given, strict=True)), orm
            assert all(row.pk is not None for row in rows) and rows[0].pk != rows[1].pk, orm
            for row in rows:  # the row written for it, every column (its key too)
                stored = HistoricalContract.objects.get(pk=row.pk)
                assert [getattr(stored, name) for name in attnames(HistoricalContract)] == [
                    getattr(row, name) for name in attnames(HistoricalContract)
                ], orm
    finally:
        signals.post_init.disconnect(sender=HistoricalContract, dispatch_uid="test-history-built")
    assert HistoricalContract.objects.filter(id=contract.pk).count() == 4


class _HistoryElsewhere:
    """A router sending the writes of history rows to another database."""

    def db_for_write(self, model, **hints):
        return "elsewhere" if model.__name__ == "HistoricalContract" else None

    def allow_relation(self, obj1, obj2, **hints):
        return True


def test_a_bulk_create_of_history_rows_goes_where_the_routers_send_writes(settings):
    """The prepared INSERT writes on the default database only: rows the routers send elsewhere are the ORM's
    (before, they were written on the default database, the routers' answer for reads)."""
    from django.utils.connection import ConnectionDoesNotExist

    from sla.models import HistoricalContract
    from sla.services.admission import CONTRACT_INSERT

    customer, tier, _, _ = _commerce()
    (contract,) = CONTRACT_INSERT.insert([_new_contract(customer, tier)])
    settings.DATABASE_ROUTERS = [_HistoryElsewhere()]
    with pytest.raises(ConnectionDoesNotExist):  # the ORM's bulk_create, on the database the router names
        HistoricalContract.objects.bulk_create([_history_row(contract, customer.user)])
    assert HistoricalContract.objects.using("default").bulk_create([_history_row(contract, customer.user)])[0].pk
    assert HistoricalContract.objects.filter(id=contract.pk).count() == 1  # the one written on "default"


def _with_history(insert, contract, placements, user=None, reason="admitted (quote 7)", **options):
    """`insert.insert` of `contract`, its `placements` and its history row as admission writes them (simple-history's
    bulk_history_create of the saved contract): the saved contract, placements and history rows."""
    from sla.models import Contract

    rows = []

    def history(saved):
        built = Contract.history.bulk_history_create(
            [saved], default_user=user, default_change_reason=reason, default_date=saved.status_changed_at, **options
        )
        rows.extend(built or [])  # None with history off

    saved, placed = insert(contract, placements, history=history)
    return saved, placed, rows


def _written(contract, placements, rows):
    """Every column of the contract, its placements (but the contract) and its history rows (but their own key),
    as stored and as the instances hold them; the keys that tie them together."""
    from sla.models import HistoricalContract

    stored = list(HistoricalContract.objects.filter(id=contract.pk).order_by("pk"))
    assert [row.pk for row in rows] == [row.pk for row in stored]
    names = [name for name in attnames(HistoricalContract) if name not in ("history_id", "id")]
    held = [[getattr(row, name) for name in names] for row in rows]
    assert held == [[getattr(row, name) for name in names] for row in stored]
    assert all(row.id == contract.pk for row in rows + stored) and all(p.contract_id == contract.pk for p in placements)
    return _columns(contract), [_columns(p)[1:] for p in placements], held


def test_a_contract_its_placements_and_its_history_row_in_one_statement_write_what_the_separate_statements_write(
    monkeypatch,
):
    """The history row simple-history's bulk_history_create builds of the saved contract is written by the statement
    that writes the contract and its placements (one round trip on PostgreSQL), column by column as the separate
    statements write it (PreparedInsertWithChildren._separately: the contract with its placements, then the row
    through the history model's bulk_create): history_date, history_user, history_type, reason, every tracked
    column; the row gets its own key and the contract's, as bulk_create sets them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from sla.services.admission import CONTRACT_WITH_PLACEMENTS_INSERT as INSERT

    monkeypatch.setattr(timezone, "now", lambda: T0)  # auto_now_add: the same created_at on both sides
    customer, tier, oslo, dublin = _commerce()
    for sites in ([oslo], [oslo, dublin], [dublin, oslo, dublin]):
        with CaptureQueriesContext(connection) as separate:
            theirs = _with_history(INSERT._separately, _new_contract(customer, tier),
                                   _placements_without_contract(*sites), customer.user)  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            ours = _with_history(INSERT.insert, _new_contract(customer, tier), _placements_without_contract(*sites),
                                 customer.user)  # fmt: skip

        assert len(separate.captured_queries) == 3
        assert len(queries.captured_queries) == (1 if connection.vendor == "postgresql" else 3)
        assert 'INSERT INTO "sla_historicalcontract"' in queries.captured_queries[-1]["sql"]
        assert _written(*ours) == _written(*theirs) and ours[0].pk != theirs[0].pk
        (row,) = ours[2]
        written = (row.history_type, row.history_change_reason, row.history_user)
        assert written == ("+", "admitted (quote 7)", customer.user)
        assert (row.history_date, row.id, row.instance.pk) == (T0, ours[0].pk, ours[0].pk)
        assert [p.contract for p in ours[1]] == [ours[0]] * len(sites) and not ours[0]._state.adding


def test_a_history_row_not_handed_over_plainly_is_written_by_the_separate_statements(monkeypatch, caplog, settings):
    """What the one statement does not do writes the separate statements, the same rows: a bulk_create of the history
    rows with an option (the ORM's own), a shape refused at compile time (logged once); history off writes none."""
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    import core.db
    from core.db import PreparedInsertWithChildren
    from sla.models import Contract, HistoricalContract

    customer, tier, oslo, dublin = _commerce()
    insert = PreparedInsertWithChildren(Contract, Placement, "contract", history=HistoricalContract)
    with CaptureQueriesContext(connection) as queries:  # batch_size: the ORM's bulk_create, after the one statement
        contract, placed, rows = _with_history(insert.insert, _new_contract(customer, tier),
                                               _placements_without_contract(oslo, dublin), batch_size=5)  # fmt: skip
    assert len(queries.captured_queries) == (2 if connection.vendor == "postgresql" else 3)
    assert len(rows) == 1 and _written(contract, placed, rows)[0] == _columns(contract)
    settings.SIMPLE_HISTORY_ENABLED = False
    with CaptureQueriesContext(connection) as queries:
        contract, placed, rows = _with_history(insert.insert, _new_contract(customer, tier),
                                               _placements_without_contract(oslo))  # fmt: skip
    assert len(queries.captured_queries) == (1 if connection.vendor == "postgresql" else 2)
    assert rows == [] and not HistoricalContract.objects.filter(id=contract.pk).exists()
    settings.SIMPLE_HISTORY_ENABLED = True
    monkeypatch.setattr(core.db, "_INSERT", re.compile(r"a shape no Django compiles"))
    insert = PreparedInsertWithChildren(Contract, Placement, "contract", history=HistoricalContract)
    for sites in ([oslo], [dublin, oslo]):
        with CaptureQueriesContext(connection) as queries:
            contract, placed, rows = _with_history(insert.insert, _new_contract(customer, tier),
                                                   _placements_without_contract(*sites))  # fmt: skip
        assert len(queries.captured_queries) == 3 and len(rows) == 1 and _written(contract, placed, rows)
    refusals = [r for r in caplog.records if "PreparedInsertWithChildren: unexpected statements" in r.getMessage()]
    assert len(refusals) == (1 if connection.vendor == "postgresql" else 0)


def test_a_history_row_whose_statement_alone_is_refused_is_written_after_the_one_statement(monkeypatch, caplog):
    """Where the ORM compiles the history model's INSERT in a shape the one statement does not know (and the
    contract's and placements' in one it knows), the contract and its placements are still one statement and the
    row is written after it by the history model's bulk_create: two statements, the same rows; logged once."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    import core.db
    from core.db import PreparedInsertWithChildren, Refused
    from sla.models import Contract, HistoricalContract

    if connection.vendor != "postgresql":
        pytest.skip("the one statement is PostgreSQL's")
    keyed = core.db._keyed

    def history_refused(name, *args):
        if name == "history":
            raise Refused("PreparedInsertWithChildren: unexpected statements (the history row's)")
        return keyed(name, *args)

    monkeypatch.setattr(core.db, "_keyed", history_refused)
    customer, tier, oslo, dublin = _commerce()
    insert = PreparedInsertWithChildren(Contract, Placement, "contract", history=HistoricalContract)
    for sites in ([oslo], [dublin, oslo]):
        with CaptureQueriesContext(connection) as queries:
            contract, placed, rows = _with_history(insert.insert, _new_contract(customer, tier),
                                                   _placements_without_contract(*sites))  # fmt: skip
        statements = [query["sql"] for query in queries.captured_queries]
        assert len(statements) == 2 and statements[0].startswith("WITH parent AS")
        assert statements[1].startswith('INSERT INTO "sla_historicalcontract"')
        assert len(rows) == 1 and len(placed) == len(sites) and _written(contract, placed, rows)
    refusals = [r for r in caplog.records if "(the history row's)" in r.getMessage()]
    assert len(refusals) == 1 and "the history row after it" in refusals[0].getMessage()


def test_a_history_model_with_a_relation_to_its_parent_has_its_row_written_after_the_one_statement():
    """simple-history's `related_name` gives the history model a `history_relation` to the parent, which
    bulk_history_create sets from the parent's key: the one statement fills only the copy of the key, so such a
    model's row is written after it by its bulk_create (the relation set), not with a relation left empty."""
    from django.apps import apps
    from django.db import connection, models
    from django.test.utils import CaptureQueriesContext

    from core.db import PreparedInsertWithChildren
    from sla.models import Contract, PreparedHistoryRows

    if connection.vendor != "postgresql":
        pytest.skip("the one statement is PostgreSQL's (and SQLite makes no table inside the test's transaction)")

    class HistoricalRelatedContract(PreparedHistoryRows):  # the columns simple-history adds for related_name
        id = models.BigIntegerField(db_index=True)
        history_id = models.AutoField(primary_key=True)
        history_relation = models.ForeignKey(Contract, models.DO_NOTHING, db_constraint=False, related_name="+")

        class Meta:
            app_label = "sla"  # registered for this test only (copies of instances look their model up)

    built = []

    def history(saved):  # as bulk_history_create builds the row of a history model with history_relation
        row = HistoricalRelatedContract(id=saved.pk)
        row.history_relation_id = saved.pk
        built.extend(HistoricalRelatedContract.objects.bulk_create([row]))

    try:
        with connection.schema_editor() as editor:  # rolled back with the test's transaction
            editor.create_model(HistoricalRelatedContract)
        customer, tier, oslo, _ = _commerce()
        insert = PreparedInsertWithChildren(Contract, Placement, "contract", history=HistoricalRelatedContract)
        with CaptureQueriesContext(connection) as queries:
            contract, _ = insert.insert(_new_contract(customer, tier), _placements_without_contract(oslo),
                                        history=history)  # fmt: skip
        assert len(queries.captured_queries) == 2
        stored = HistoricalRelatedContract.objects.get()
        assert (stored.pk, stored.id, stored.history_relation_id) == (built[0].pk, contract.pk, contract.pk)
    finally:
        del apps.all_models["sla"][HistoricalRelatedContract._meta.model_name]
        apps.clear_cache()


def test_a_history_row_that_fails_writes_nothing_and_marks_the_transaction():
    from django.db import DataError, IntegrityError, connection, transaction

    from core.db import PreparedInsertWithChildren
    from sla.models import Contract, HistoricalContract
    from sla.services.admission import CONTRACT_WITH_PLACEMENTS_INSERT as INSERT
    from sla.services.admission import QUOTE_INSERT

    customer, tier, oslo, _ = _commerce()
    (quote,) = QUOTE_INSERT.insert([_new_quote(customer, tier)])
    _with_history(INSERT.insert, _new_contract(customer, tier, quote=quote), _placements_without_contract(oslo))
    cases = [(_new_contract(customer, tier, quote=quote), "admitted", IntegrityError)]  # a second buyer of the quote
    if connection.vendor == "postgresql":  # SQLite does not check a varchar's length
        cases.append((_new_contract(customer, tier), "x" * 101, DataError))  # history_change_reason: varchar(100)
    for contract, reason, error in cases:
        with pytest.raises(error), transaction.atomic():
            try:
                _with_history(INSERT.insert, contract, _placements_without_contract(oslo), reason=reason)
            finally:
                assert transaction.get_rollback()
    counts = (Contract.objects.count(), Placement.objects.count(), HistoricalContract.objects.count())
    assert counts == (1, 1, 1)
    with pytest.raises(TypeError, match="no history model of Contract"):
        PreparedInsertWithChildren(Contract, Placement, "contract", history=Placement)
    with pytest.raises(TypeError, match="need the constructor's history model"):
        _with_history(PreparedInsertWithChildren(Contract, Placement, "contract").insert,
                      _new_contract(customer, tier), _placements_without_contract(oslo))  # fmt: skip


def test_a_float_read_by_hand_keeps_the_digits_the_orm_keeps():
    """SQLite answers sums and annotations as floats; the ORM's DecimalField converter keeps 15 significant digits
    (the rest is the float's inaccuracy), and a number read by hand must read the same."""
    from core.db import decimal

    assert decimal(1019.9999999999999) == Decimal("1020")
    assert decimal(0.1 + 0.2) == Decimal("0.3")
    assert decimal(59.9139) == Decimal("59.9139")
    assert decimal(Decimal("12.345")) == Decimal("12.345")
    assert decimal(None) == Decimal("0") and decimal(7) == Decimal("7")


def test_an_instance_built_to_insert_is_what_the_constructor_builds_and_is_itself_the_saved_one():
    customer, tier = CustomerFactory(), TierFactory()
    given = dict(
        customer=customer, tier=tier, capacity_kw=Decimal("5.000"), starts_at=T0, ends_at=T0 + H, valid_until=T0,
        token_price_usd_per_mtok=Decimal("1.5000"), token_price_source="default", tokens_per_s_per_kw=Decimal("2"),
        base_value_usd_per_kwh=Decimal("0.1"), tier_multiplier=Decimal("1.00"), utilization_pct=Decimal("50"),
        utilization_factor=Decimal("1.0000"), price_usd_per_kwh=Decimal("0.1"), total_usd=Decimal("0.50"),
    )  # fmt: skip
    built, constructed = QUOTE_INSERT.new(**given), Quote(**given)  # the rest (sites, rates, fee) defaults

    fields = Quote._meta.concrete_fields
    assert [getattr(built, f.attname) for f in fields] == [getattr(constructed, f.attname) for f in fields]
    assert built.customer is customer and built.tier is tier
    assert built.sites == [] and built.sites is not constructed.sites  # a callable default, called for each
    by_key = {**{k: v for k, v in given.items() if k != "tier"}, "customer": None, "tier_id": tier.pk}
    assert (QUOTE_INSERT.new(**by_key).customer_id, QUOTE_INSERT.new(**by_key).tier_id) == (None, tier.pk)
    with pytest.raises(TypeError, match="no field named \\['colour'\\]"):
        QUOTE_INSERT.new(**given, colour="red")

    (saved,) = QUOTE_INSERT.insert([built])
    assert saved is built and built.pk is not None
    assert (built._state.adding, built._state.db) == (False, "default")  # as Model.from_db and save() leave it
    stored = Quote.objects.get(pk=built.pk)
    assert [getattr(stored, f.attname) for f in fields] == [getattr(built, f.attname) for f in fields]
    (copy_of_constructed,) = QUOTE_INSERT.insert([constructed])  # an instance from the constructor: a saved copy
    assert copy_of_constructed is not constructed and constructed.pk is None

    first = QUOTE_INSERT.new(**given)
    retried = QUOTE_INSERT.copy(first)  # another attempt after a rolled-back one writes a copy of what `new` built
    (saved_retry,) = PreparedInsert(Quote).insert([retried])  # by any PreparedInsert of the model
    assert saved_retry is retried and retried.pk is not None and first.pk is None
    constructed_copy = QUOTE_INSERT.copy(Quote(**given))  # a copy of a constructed one: still a saved copy
    (from_constructor,) = QUOTE_INSERT.insert([constructed_copy])
    assert from_constructor is not constructed_copy and constructed_copy.pk is None


def test_a_quote_and_its_purchase_build_each_written_instance_once():
    fleet = build_fleet()
    customer = CustomerFactory()
    built: list[str] = []

    def receiver(sender, instance, **kwargs):
        built.append(sender.__name__)

    request = CapacityRequest(fleet.standard, Decimal("10"), T0 + 24 * H, T0 + 26 * H)
    post_init.connect(receiver, weak=False, dispatch_uid="built_once")
    try:
        with time_machine.travel(T0, tick=False):
            quote = create_quote(customer=customer, request=request)
            contract = create_contract_from_quote(quote=quote)
    finally:
        post_init.disconnect(dispatch_uid="built_once")

    placements = Placement.objects.filter(contract=contract).count()
    assert quote.pk is not None and Contract.objects.filter(pk=contract.pk, quote=quote).exists()
    assert (built.count("Quote"), built.count("Contract"), built.count("Placement")) == (1, 1, placements)

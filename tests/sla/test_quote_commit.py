"""A quote commits without a WAL flush of its own; its purchase, and every other write, still wait for theirs.

PostgreSQL decides at commit whether to wait for the WAL flush, by the `synchronous_commit` in effect then
(docs/api-performance.md, "a quote's commit without a flush of its own"). A deferred constraint trigger runs inside
the commit, after every statement of the transaction, and reports that setting as a notice: what each commit
below reports is what PostgreSQL read for it. On PostgreSQL only (SQLite has neither WAL flushes nor the setting).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from sla.models import Quote
from sla.services import CapacityRequest, create_contract_from_quote, create_quote
from tests.factories import T0, CustomerFactory, UserFactory
from tests.sla.conftest import build_fleet

pytestmark = pytest.mark.django_db(transaction=True)

REPORT_AT_COMMIT = """
CREATE FUNCTION test_commit_setting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'commit: % %', TG_TABLE_NAME, current_setting('synchronous_commit');
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER test_commit_setting AFTER INSERT ON sla_quote DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION test_commit_setting();
CREATE CONSTRAINT TRIGGER test_commit_setting AFTER INSERT ON sla_contract DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION test_commit_setting();
"""


@pytest.fixture
def commits():
    """(table, synchronous_commit) for each quote and contract row, as read when its transaction commits."""
    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    seen: list[tuple[str, str]] = []
    with connection.cursor() as cursor:
        cursor.execute(REPORT_AT_COMMIT)
    driver = connection.connection

    def notice(diagnostic) -> None:
        if diagnostic.message_primary.startswith("commit: "):
            table, setting = diagnostic.message_primary.removeprefix("commit: ").split()
            seen.append((table, setting))

    driver.add_notice_handler(notice)
    try:
        yield seen
    finally:
        driver.remove_notice_handler(notice)
        with connection.cursor() as cursor:
            cursor.execute("DROP FUNCTION test_commit_setting() CASCADE")


def _session_setting() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def _ask(fleet) -> CapacityRequest:
    window = {"starts_at": T0, "ends_at": T0 + timedelta(hours=2)}
    return CapacityRequest(tier=fleet.standard, capacity_kw=Decimal("50"), region_preference="", **window)


def test_a_quote_commits_without_a_flush_of_its_own_and_its_purchase_with_one(commits):
    fleet, customer = build_fleet(), CustomerFactory(user=UserFactory())
    assert _session_setting() == "on" and not connection.in_atomic_block
    with time_machine.travel(T0, tick=False):
        with CaptureQueriesContext(connection) as queries:
            quote = create_quote(customer=customer, request=_ask(fleet))
        assert commits == [("sla_quote", "off")]
        assert _session_setting() == "on"  # the session's own setting is untouched
        inserts = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"]]
        assert len(inserts) == 1 and inserts[0].endswith(", set_config('synchronous_commit', 'off', true)")

        create_contract_from_quote(quote=quote)  # its COMMIT flushes the WAL up to it, the quote's commit included

    assert commits == [("sla_quote", "off"), ("sla_contract", "on")] and _session_setting() == "on"


def test_every_other_write_of_a_quote_commits_with_a_flush(commits):
    """A quote written inside a transaction (the statement's setting would hold for all of it: not set there), and
    a quote saved through the ORM (admin, tasks, shell): both commit with the session's setting."""
    fleet, customer = build_fleet(), CustomerFactory(user=UserFactory())
    with time_machine.travel(T0, tick=False):
        with transaction.atomic(), CaptureQueriesContext(connection) as queries:
            quote = create_quote(customer=customer, request=_ask(fleet))
        assert not any("set_config" in query["sql"] for query in queries.captured_queries)
        copy = Quote.objects.get(pk=quote.pk)
        copy.pk = None
        copy.save()
        Quote.objects.create(**{f.attname: getattr(quote, f.attname) for f in Quote._meta.concrete_fields[1:]})

    assert commits == [("sla_quote", "on")] * 3 and _session_setting() == "on"


def test_an_insert_in_a_shape_it_does_not_know_commits_with_its_flush_and_says_so_once(commits, monkeypatch, caplog):
    """Another Django compiling the INSERT otherwise (not ending with RETURNING its key): written as it is, and
    committed with a flush, as any other write; logged once."""
    import re

    import core.db
    from core.db import PreparedInsert

    fleet, customer = build_fleet(), CustomerFactory(user=UserFactory())
    with time_machine.travel(T0, tick=False):
        quote = create_quote(customer=customer, request=_ask(fleet))
    monkeypatch.setattr(core.db, "_RETURNING_KEY", re.compile(r"a shape no Django compiles"))
    insert = PreparedInsert(Quote, asynchronous_commit=True)
    for _ in range(2):
        insert.insert([Quote(**{f.attname: getattr(quote, f.attname) for f in Quote._meta.concrete_fields[1:]})])

    assert commits == [("sla_quote", "off"), ("sla_quote", "on"), ("sla_quote", "on")]
    assert len([r for r in caplog.records if "does not end with RETURNING its key" in r.getMessage()]) == 1

"""The quote's and the purchase's answers are built by `SharedFieldsMixin.represent` (no serializer built per
answer); they must be what `Serializer(instance).data` gives, in JSON and in the browsable API's HTML."""

from __future__ import annotations

import re

import pytest
from django.db import transaction
from django.urls import reverse
from rest_framework.parsers import FormParser
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.serializer_helpers import ReturnDict

from sla.api.serializers import ContractSerializer, QuoteSerializer, SharedFieldsMixin
from sla.api.views import QuoteViewSet
from sla.models import Quote

pytestmark = pytest.mark.django_db

QUOTES = reverse("quote-list")
CONTRACTS = reverse("contract-list")
QUOTE_BODY = {"tier": "premium", "capacity_kw": "80", "starts_at": "2026-06-01T06:00:00Z", "duration_hours": "10"}


def drfs_way(monkeypatch):
    monkeypatch.setattr(SharedFieldsMixin, "represent", classmethod(lambda cls, instance: cls(instance).data))


def test_an_answer_built_without_a_serializer_per_answer_is_drfs(fleet, frozen, customer_api, monkeypatch):
    """The instances the views answer with (a quote; a contract bought from a quote, and one inline), represented
    both ways: the same data, the same JSON bytes, a ReturnDict whose serializer is of the same class."""
    answered = []
    represent = SharedFieldsMixin.represent.__func__

    def noting(cls, instance):
        answered.append((cls, instance))
        return represent(cls, instance)

    monkeypatch.setattr(SharedFieldsMixin, "represent", classmethod(noting))
    quote_id = customer_api.post(QUOTES, QUOTE_BODY, format="json").json()["id"]
    assert customer_api.post(CONTRACTS, {"quote": quote_id}, format="json").status_code == 201
    inline = {"tier": "spot", "capacity_kw": "5", "duration_hours": "1", "region_preference": "europe"}
    assert customer_api.post(CONTRACTS, inline, format="json").status_code == 201
    assert [cls for cls, _ in answered] == [QuoteSerializer, ContractSerializer, ContractSerializer]
    for cls, instance in answered:
        ours, drfs = represent(cls, instance), cls(instance).data
        assert ours == drfs
        assert JSONRenderer().render(ours) == JSONRenderer().render(drfs)
        assert isinstance(ours, ReturnDict) and type(ours.serializer) is type(drfs.serializer)
        assert ours.serializer.instance is drfs.serializer.instance is instance
        assert ours.serializer.data == drfs.serializer.data  # what the browsable API renders of it


def test_the_browsable_api_answers_a_purchase_the_same(fleet, frozen, customer_api, monkeypatch):
    """DRF's browsable API reads the answer's serializer backlink (its instance: object permissions, PUT / PATCH
    forms): the HTML of a quote and a purchase is the same either way (but for the CSRF token and the new ids)."""

    def html(quote_id=None):
        path, body = (QUOTES, QUOTE_BODY) if quote_id is None else (CONTRACTS, {"quote": quote_id})
        response = customer_api.post(path, body, format="json", HTTP_ACCEPT="text/html")
        assert response.status_code == 201 and response["Content-Type"].startswith("text/html")
        return response.content.decode()

    def id_in(page):  # the answer's own id, the first in the page
        return int(re.search(r"&quot;id&quot;: (\d+),", page).group(1))

    def normalized(page, *ids):
        page = re.sub(r'"csrfToken": "[^"]+"', "CSRF", page)
        for n, pk in enumerate(ids):
            page = re.sub(rf"(&quot;(?:id|quote)&quot;: |quote ){pk}(?!\d)", rf"\g<1>ID{n}", page)
        return page

    def quote_and_purchase():  # each from the same state: rolled back after
        with transaction.atomic():
            quote = html()
            contract = html(id_in(quote))
            transaction.set_rollback(True)
        return quote, contract

    ours_quote, ours_contract = quote_and_purchase()
    drfs_way(monkeypatch)
    drfs_quote, drfs_contract = quote_and_purchase()
    assert normalized(ours_quote, id_in(ours_quote)) == normalized(drfs_quote, id_in(drfs_quote))
    assert normalized(ours_contract, id_in(ours_quote), id_in(ours_contract)) == normalized(
        drfs_contract, id_in(drfs_quote), id_in(drfs_contract)
    )


def test_a_quote_and_a_purchase_build_no_output_serializer(fleet, frozen, customer_api, monkeypatch):
    """Each answer of a quote or a purchase used to build its output serializer (a Field.__init__ of ~30
    attributes, and DRF's `.data` bookkeeping); now the kept one answers them all."""
    built = []
    for cls in (QuoteSerializer, ContractSerializer):
        init = cls.__init__

        def counting(self, *args, _init=init, **kwargs):
            built.append(type(self).__name__)
            _init(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    for _ in range(3):
        quote_id = customer_api.post(QUOTES, QUOTE_BODY | {"capacity_kw": "1"}, format="json").json()["id"]
        assert customer_api.post(CONTRACTS, {"quote": quote_id}, format="json").status_code == 201
    assert len(built) <= 2  # at most the kept instance of each class, made once per process


def test_each_answer_has_a_serializer_of_its_own_and_the_kept_one_is_never_handed_out(
    fleet, frozen, customer_api, monkeypatch
):
    """The browsable API reads the answer's serializer backlink and, for a view that takes forms, caches its
    `.data` on it (the form of the request's method): were the backlink the serializer kept per process, that
    state would be shared by every answer and thread of the process. Each answer's is its own, and the kept one
    stays as it was made. (The SLA views take JSON only today; the quotes' view is given a form parser here.)"""
    quote_id = customer_api.post(QUOTES, QUOTE_BODY, format="json").json()["id"]  # the kept quote serializer made
    kept = SharedFieldsMixin._prototypes[QuoteSerializer]
    made = dict(vars(kept))
    monkeypatch.setattr(QuoteViewSet, "parser_classes", (*QuoteViewSet.parser_classes, FormParser))
    for _ in range(2):
        page = customer_api.post(QUOTES, QUOTE_BODY, format="json", HTTP_ACCEPT="text/html")
        assert page.status_code == 201 and page["Content-Type"].startswith("text/html")
    assert vars(kept) == made
    quote = Quote.objects.get(pk=quote_id)
    first, second = QuoteSerializer.represent(quote), QuoteSerializer.represent(quote)
    assert first.serializer is first.serializer  # built once per answer, as DRF's `.data` builds it
    assert first.serializer is not second.serializer and kept not in (first.serializer, second.serializer)
    assert first.serializer.instance is quote
    merged = first | {"extra": 1}  # ReturnDict's own copies keep the backlink
    assert merged.serializer is first.serializer and first.copy().serializer is first.serializer

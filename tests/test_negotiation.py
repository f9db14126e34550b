"""The API's content negotiation (core.negotiation.AnyMediaTypeNegotiation) answers exactly what DRF's does, and
answers a request that accepts anything without parsing its Accept header."""

from __future__ import annotations

import itertools

import pytest
from django.conf import settings
from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer, TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from core.negotiation import AnyMediaTypeNegotiation
from tests.factories import TierFactory


class VersionedJSONRenderer(BaseRenderer):
    media_type = "application/json; version=2"
    format = "json2"


class AnythingRenderer(BaseRenderer):
    media_type = "*/*"
    format = "any"


ACCEPTS = [
    None,
    "*/*",
    "",
    " */*",
    "*/*;q=0.8",
    "application/json",
    "text/html",
    "application/json; version=2",
    "text/html, */*",
    "image/png",
    "*/*, application/json",
]
QUERIES = ["", "format=api", "format=json", "page=2", "format=nope"]
SUFFIXES = [None, "json", "api"]
RENDERER_LISTS = [
    [JSONRenderer, BrowsableAPIRenderer],
    [BrowsableAPIRenderer, JSONRenderer],
    [VersionedJSONRenderer, JSONRenderer],
    [AnythingRenderer, JSONRenderer],
    [TemplateHTMLRenderer],
    [],
]


def negotiate(negotiation, accept, query, suffix, renderer_classes):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/api/tiers/?{query}" if query else "/api/tiers/", **headers))
    renderers = [renderer() for renderer in renderer_classes]
    try:
        renderer, media_type = negotiation().select_renderer(request, renderers, suffix)
    except (exceptions.NotAcceptable, Http404) as exc:  # no renderer fits; an unknown format
        return type(exc).__name__
    return type(renderer), media_type


@pytest.mark.parametrize("renderer_classes", RENDERER_LISTS, ids=lambda r: "+".join(c.__name__ for c in r) or "none")
def test_the_negotiation_answers_what_drfs_answers(renderer_classes):
    for accept, query, suffix in itertools.product(ACCEPTS, QUERIES, SUFFIXES):
        ours = negotiate(AnyMediaTypeNegotiation, accept, query, suffix, renderer_classes)
        drfs = negotiate(DefaultContentNegotiation, accept, query, suffix, renderer_classes)
        assert ours == drfs, (accept, query, suffix)


def test_a_request_accepting_anything_is_answered_without_parsing_its_accept_header(customer_api, monkeypatch):
    """The API's negotiation (settings) answers a request with no Accept header, or `*/*`, with the first renderer
    and its media type without DRF's parse of the header; the answer is DRF's (the test above)."""
    assert settings.REST_FRAMEWORK["DEFAULT_CONTENT_NEGOTIATION_CLASS"] == "core.negotiation.AnyMediaTypeNegotiation"
    TierFactory()
    parsed = []
    original = DefaultContentNegotiation.get_accept_list
    monkeypatch.setattr(
        DefaultContentNegotiation, "get_accept_list", lambda self, request: parsed.append(1) or original(self, request)
    )

    for accept in (None, "*/*"):
        response = customer_api.get("/api/tiers/", **({} if accept is None else {"HTTP_ACCEPT": accept}))
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
    assert parsed == []

    response = customer_api.get("/api/tiers/", HTTP_ACCEPT="text/html")  # anything else: DRF's negotiation
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert parsed == [1]

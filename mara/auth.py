"""``X-Api-Key``: the served hackathon API's only credential, as a DRF authentication class and permission.

A key identifies a ``MarketApiSite`` (``request.auth``); the user stays anonymous, so a key never grants anything
under ``/api/``. A missing key on a protected endpoint is 401 (``NotAuthenticated``), an unknown one 401
(``AuthenticationFailed``), both with a JSON ``detail`` and a ``WWW-Authenticate`` header naming the header.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from sites.models import MARKET_API_KEY_LENGTH, MarketApiSite

HEADER = "X-Api-Key"
META_KEY = "HTTP_X_API_KEY"


class MarketApiKeyAuthentication(BaseAuthentication):
    """Authenticates a request by its ``X-Api-Key`` header (any capitalisation: HTTP header names are not cased)."""

    def authenticate(self, request):
        key = request.META.get(META_KEY, "").strip()
        if not key:
            return None
        if len(key) > MARKET_API_KEY_LENGTH:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        site = MarketApiSite.objects.filter(api_key=key).first()
        if site is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return AnonymousUser(), site

    def authenticate_header(self, request) -> str:
        return f'ApiKey header="{HEADER}"'


class HasMarketApiKey(BasePermission):
    """Only a request authenticated by a market API key may pass."""

    message = f"Send your site's API key in the {HEADER} header (POST /sites creates a site and its key)."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, MarketApiSite)

"""The served hackathon market API: the event's paths, JSON shapes and status codes.

Shapes (keys sorted, as the event's Flask server sent them; timestamps naive ISO 8601 in UTC)::

    GET  /prices     [{"energy_price", "hash_price", "timestamp", "token_price"}, ...]   newest first, public
    GET  /inventory  {"inference": {"asic": {...}, "gpu": {...}}, "miners": {"air", "hydro", "immersion"}}  public
    POST /sites      {"name"} -> 200 {"api_key", "name", "power"}                           throttled (scope "mara")
    GET  /sites      -> {"api_key", "id", "name", "power"}                                  X-Api-Key
    PUT  /machines   {air_miners, hydro_miners, immersion_miners, gpu_compute, asic_compute}
                     -> {<the five counts>, "id", "site_id", "updated_at"}                  X-Api-Key
    GET  /machines   -> the same plus "power", "revenue", "total_power_cost", "total_power_used",
                        "total_revenue" at the newest served price                          X-Api-Key

Decisions where the event's documentation is silent (see also ``serializers``):

- ``POST /sites`` answers 200, the status of the event's server (Flask's default); clients checked ``ok``.
- A site starts with an all-zero allocation, so ``GET /machines`` answers before the first ``PUT``.
- ``PUT /machines`` replaces the allocation; a type left out runs 0 units, as in the event's own example.
- Over the site's power: 400 ``{"detail", "required_power", "site_power"}``; invalid counts: 400 with field errors;
  missing or unknown key: 401 ``{"detail"}``; no price stored yet for ``GET /machines``: 503 ``{"detail"}``;
  a stored allocation above a power lowered afterwards (by hand): 409 on ``GET /machines``.
- Public endpoints ignore ``X-Api-Key`` (a client that sends its key everywhere still reads prices).
"""

from __future__ import annotations

import copy

from rest_framework import status
from rest_framework.exceptions import APIException, NotAuthenticated, NotFound
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.parsers import StrictJSONParser
from core.throttling import ScopedRateThrottle
from optimizer.engine.mara import HACKATHON_INVENTORY
from sites.models import MarketApiAllocation, MarketApiSite

from .auth import HasMarketApiKey, MarketApiKeyAuthentication
from .prices import latest_price, naive_utc_iso, served_prices
from .serializers import CreateSiteSerializer, MachinesSerializer
from .services import (
    AllocationOverPower,
    MachinesStatus,
    MarketApiError,
    create_market_api_site,
    machines_status,
    set_market_api_allocation,
)


class NoPricesYet(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "No market prices are stored yet, so revenue cannot be computed; try again shortly."
    default_code = "no_prices"


class MarketApiView(APIView):
    """JSON in and out, X-Api-Key only (no session, so no CSRF), and outside /api/'s OpenAPI schema."""

    schema = None
    renderer_classes = [JSONRenderer]
    parser_classes = [StrictJSONParser]
    authentication_classes = [MarketApiKeyAuthentication]
    permission_classes = [HasMarketApiKey]

    def permission_denied(self, request, message=None, code=None):
        if request.authenticators and not request.successful_authenticator:
            raise NotAuthenticated(HasMarketApiKey.message)  # says which header, and how to get a key
        super().permission_denied(request, message=message, code=code)


class PublicMarketApiView(MarketApiView):
    authentication_classes = []
    permission_classes = [AllowAny]


class PricesView(PublicMarketApiView):
    def get(self, request):
        return Response([price.as_json() for price in served_prices()])


class InventoryView(PublicMarketApiView):
    def get(self, request):
        return Response(copy.deepcopy(HACKATHON_INVENTORY))


def _site_json(site: MarketApiSite, *, with_id: bool) -> dict[str, object]:
    body: dict[str, object] = {"api_key": site.api_key, "name": site.name, "power": site.power_w}
    if with_id:
        body["id"] = site.pk
    return dict(sorted(body.items()))


def _allocation_json(allocation: MarketApiAllocation) -> dict[str, object]:
    body: dict[str, object] = {
        **allocation.counts,
        "id": allocation.pk,
        "site_id": allocation.site_id,
        "updated_at": naive_utc_iso(allocation.updated_at),
    }
    return dict(sorted(body.items()))


def _status_json(machines: MachinesStatus) -> dict[str, object]:
    report = machines.report
    body = {
        **_allocation_json(machines.allocation),
        "power": dict(sorted(report.power.items())),
        "revenue": dict(sorted(report.revenue.items())),
        "total_power_cost": report.total_power_cost,
        "total_power_used": report.total_power_used,
        "total_revenue": report.total_revenue,
    }
    return dict(sorted(body.items()))


def _over_power(exc: AllocationOverPower, *, status_code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response(
        {"detail": str(exc), "required_power": exc.required_w, "site_power": exc.available_w}, status=status_code
    )


class SitesView(MarketApiView):
    """``POST`` creates a site (public, throttled); ``GET`` shows the key's site."""

    throttle_scope = "mara"

    def get_authenticators(self):
        # Creating a site needs no key: a client that sends an old one with every request may still create one.
        if self.request.method == "POST":
            return []
        return super().get_authenticators()

    def get_permissions(self):
        if self.request.method == "POST":
            return [AllowAny()]
        return super().get_permissions()

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.request.method == "POST":
            throttles.append(ScopedRateThrottle())
        return throttles

    def get(self, request):
        return Response(_site_json(request.auth, with_id=True))

    def post(self, request):
        serializer = CreateSiteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            site = create_market_api_site(name=serializer.validated_data["name"])
        except MarketApiError as exc:
            return Response({"name": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(_site_json(site, with_id=False), status=status.HTTP_200_OK)


class MachinesView(MarketApiView):
    """``PUT`` sets the key's site allocation (power-checked); ``GET`` reports it with the event's accounting."""

    def get(self, request):
        site: MarketApiSite = request.auth
        allocation = MarketApiAllocation.objects.filter(site=site).first()
        if allocation is None:  # a site made outside the service and the admin; a GET does not create one
            raise NotFound("This site has no allocation yet; PUT /machines sets one.")
        allocation.site = site
        price = latest_price()
        if price is None:
            raise NoPricesYet()
        try:
            machines = machines_status(allocation=allocation, price=price)
        except AllocationOverPower as exc:  # the site's power was lowered below a stored allocation
            return _over_power(exc, status_code=status.HTTP_409_CONFLICT)
        return Response(_status_json(machines))

    def put(self, request):
        serializer = MachinesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            allocation = set_market_api_allocation(site=request.auth, counts=serializer.validated_data)
        except AllocationOverPower as exc:
            return _over_power(exc)
        except MarketApiError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(_allocation_json(allocation))

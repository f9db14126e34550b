"""The operations dashboard (staff only): the page, its JSON endpoint and the status of one run.

The page embeds its first data with `json_script` (no extra round trip before it is interactive); the static
script (static/dashboard/dashboard.js) then refreshes from `DashboardDataView` every 30 s. Every number on the
page comes from that one document (the Scenarios panel included: the latest stored run of each scenario), plus a
run's status while AI Optimize is in progress.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import user_passes_test
from django.contrib.auth.views import LoginView, LogoutView
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.views import APIView

from .dashboard import build_dashboard, run_summary
from .dashboard.books import books_by_run, revenue_by_site
from .models import OptimizationRun

REFRESH_SECONDS = 30


def dashboard_config(request) -> dict:
    """What the page script needs besides the data: endpoint URLs, map settings and who is signed in."""
    customer = getattr(request.user, "customer", None)
    return {
        "refresh_seconds": REFRESH_SECONDS,
        "csrf_token": get_token(request),
        "urls": {
            "data": reverse("dashboard-data"),
            "run": reverse("dashboard-run", kwargs={"pk": 0}).replace("/0/", "/{id}/"),
            "initialize": reverse("original-initialize"),
            "optimize": reverse("original-optimize"),
            "quotes": "/api/sla/quotes/",
            "contracts": "/api/contracts/",
            "atlas": settings.STATIC_URL + "vendor/world-atlas/countries-110m.json",
        },
        "map": {
            "tile_url": settings.ENERGYARB["MAP_TILE_URL"],
            "center": list(settings.LEAFLET_CONFIG.get("DEFAULT_CENTER", (30.0, 10.0))),
            "zoom": settings.LEAFLET_CONFIG.get("DEFAULT_ZOOM", 2),
        },
        "user": {
            "username": request.user.get_username(),
            "is_staff": request.user.is_staff,
            "customer_id": customer.pk if customer else None,
        },
    }


def _is_staff(user) -> bool:
    return user.is_active and user.is_staff


class DashboardLoginView(LoginView):
    """Sign-in in the dashboard's own look; a signed-in customer is told the page needs a staff account."""

    template_name = "dashboard/login.html"
    redirect_authenticated_user = False


class DashboardLogoutView(LogoutView):
    next_page = "dashboard:login"


@never_cache  # the fleet's economics: no browser or proxy keeps a copy (Cache-Control: no-store)
@user_passes_test(_is_staff, login_url="dashboard:login")
def dashboard(request):
    """The operations page; a signed-out or non-staff visitor is sent to the sign-in page."""
    return render(
        request,
        "dashboard/index.html",
        {"initial_data": build_dashboard(now=timezone.now()), "config": dashboard_config(request)},
    )


@method_decorator(never_cache, name="dispatch")
class DashboardDataView(APIView):
    """Every number of the operations dashboard in one document (fixed query count; writes nothing)."""

    permission_classes = (permissions.IsAuthenticated, permissions.IsAdminUser)

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        summary="Dashboard data",
        description=(
            "Sites, fleet metrics, charts, latest run, contracts, customers and the latest result of each scenario "
            "for the operations page."
        ),
    )
    def get(self, request):
        return Response(build_dashboard(now=timezone.now()))


@method_decorator(never_cache, name="dispatch")
class DashboardRunView(APIView):
    """One optimization run's status, economics, explanation and Claude's narrative and verdict."""

    permission_classes = (permissions.IsAuthenticated, permissions.IsAdminUser)

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="Optimization run status for the dashboard")
    def get(self, request, pk: int):
        return Response(run_summary(get_object_or_404(OptimizationRun, pk=pk)))


@method_decorator(never_cache, name="dispatch")
class DashboardBooksView(APIView):
    """The books by stream (USD/h) of the latest applied runs, oldest first, for the stacked chart, and each site's
    revenue by stream over the last 24 h as applied (``by_site``)."""

    permission_classes = (permissions.IsAuthenticated, permissions.IsAdminUser)

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        summary="Books by stream of the latest applied runs, and per site over the last 24 h",
    )
    def get(self, request):
        return Response({**books_by_run(limit=48), "by_site": revenue_by_site(now=timezone.now())})

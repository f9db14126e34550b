"""One router under /api/ that every app's API registers its routes on, plus the plain paths of the original
product's API and the dashboard's data (listed first: `sites/status` must not reach the sites router)."""

from django.urls import URLPattern, path
from rest_framework.routers import DefaultRouter

from fleet.api.urls import routes as fleet_routes
from grid.api.urls import routes as grid_routes
from optimizer.api.original import original_urlpatterns
from optimizer.api.urls import routes as optimizer_routes
from optimizer.views import DashboardBooksView, DashboardDataView, DashboardRunView
from sites.api.urls import routes as sites_routes
from sla.api.urls import extra_urlpatterns as sla_urlpatterns
from sla.api.urls import routes as sla_routes

router = DefaultRouter()
# The SLA routes first: quoting and buying are the hot path (bench/api_load.py), and resolving a URL tries the
# patterns in order, a few µs each; behind the other apps' ~70 patterns it cost ~4 % of a quote's CPU.
for prefix, viewset, basename in (*sla_routes, *sites_routes, *grid_routes, *fleet_routes, *optimizer_routes):
    router.register(prefix, viewset, basename=basename)

# The two URLs every decision posts to (a quote, then its purchase) are tried first of all: each pattern tried
# before them cost a few µs of a request's CPU, ~15-18 of them. Only the exact `sla/quotes/` and `contracts/`, which
# no other pattern matches, so every URL resolves to the view it did (test_api.py checks it).
HOT_ROUTES = ("quote-list", "contract-list")
hot_patterns = [
    pattern
    for pattern in router.urls
    if isinstance(pattern, URLPattern)
    and pattern.name in HOT_ROUTES
    and "format" not in pattern.pattern.regex.groupindex
]

urlpatterns = [
    *hot_patterns,
    *original_urlpatterns,
    *sla_urlpatterns,  # the original's POST /api/sla/request
    path("dashboard/", DashboardDataView.as_view(), name="dashboard-data"),
    path("dashboard/runs/<int:pk>/", DashboardRunView.as_view(), name="dashboard-run"),
    path("dashboard/books/", DashboardBooksView.as_view(), name="dashboard-books"),
    *(pattern for pattern in router.urls if pattern not in hot_patterns),
]

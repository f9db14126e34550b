"""One router under /api/ that every app's API registers its routes on, plus the plain paths of the original
product's API and the dashboard's data (listed first: `sites/status` must not reach the sites router)."""

from django.urls import path
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

urlpatterns = [
    *original_urlpatterns,
    *sla_urlpatterns,  # the original's POST /api/sla/request
    path("dashboard/", DashboardDataView.as_view(), name="dashboard-data"),
    path("dashboard/runs/<int:pk>/", DashboardRunView.as_view(), name="dashboard-run"),
    path("dashboard/books/", DashboardBooksView.as_view(), name="dashboard-books"),
    *router.urls,
]

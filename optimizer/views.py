"""The operations dashboard (staff only)."""

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render

from sites.models import Site


@staff_member_required
def dashboard(request):
    sites = Site.objects.with_power_summary().with_latest_energy_price().order_by("code")
    return render(request, "dashboard/index.html", {"sites": sites})

"""Admin page to run the demo scenarios: a form, the before/after table, the summary and the chart (staff only).

Wire it in ``energyarb/urls.py`` before ``path("admin/", admin.site.urls)``::

    path("admin/scenarios/", admin.site.admin_view(scenario_admin_view), name="admin-scenarios"),

The view calls ``optimizer.scenarios.run_scenario`` (nothing live changes unless "apply" is ticked for
maintenance) and renders the chart inline as a PNG data URI, so no file is written.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from .choices import Scenario
from .scenarios import OPTIONS_BY_SCENARIO, ScenarioError, run_and_record


class ScenarioForm(forms.Form):
    scenario = forms.ChoiceField(choices=Scenario.choices)
    site = forms.SlugField(required=False, help_text="heat-wave: hot site (default: the hottest); maintenance: site")
    delta_c = forms.FloatField(required=False, initial=12.0, min_value=-30, max_value=40, label="Delta (degC)")
    hours = forms.IntegerField(required=False, min_value=1, max_value=168, help_text="default 24 (maintenance 6)")
    carbon_price_usd_per_t = forms.FloatField(required=False, initial=80.0, min_value=0, label="Carbon price (USD/t)")
    apply = forms.BooleanField(required=False, help_text="maintenance only: keep the failover (changes live data)")

    def options(self) -> dict:
        data, name = self.cleaned_data, self.cleaned_data["scenario"]
        wanted = OPTIONS_BY_SCENARIO[name]
        return {key: data[key] for key in wanted if data.get(key) not in (None, "")}


def _chart_data_uri(result) -> str:
    from .management.commands.scenario import write_chart

    with tempfile.TemporaryDirectory() as directory:
        path = write_chart(result, Path(directory))
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def scenario_admin_view(request):
    """GET: the form; POST: run the scenario and show its table, summary and chart."""
    form = ScenarioForm(request.POST or None)
    result = chart = None
    if request.method == "POST" and form.is_valid():
        if not request.user.is_staff:  # admin_view already requires staff; kept explicit for direct use
            raise PermissionError
        try:
            result = run_and_record(
                form.cleaned_data["scenario"], apply=form.cleaned_data["apply"], actor=request.user, **form.options()
            )
            chart = _chart_data_uri(result)
            messages.success(request, f"{result.title}: done in {result.seconds:.1f} s.")
        except ScenarioError as error:
            form.add_error(None, str(error))
    context = {
        **admin.site.each_context(request),
        "title": "Scenarios",
        "form": form,
        "result": result,
        "table": [[row.get(column, "") for column in result.columns] for row in result.rows] if result else [],
        "chart": chart,
    }
    return TemplateResponse(request, "admin/optimizer/scenarios.html", context)

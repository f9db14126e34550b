"""POST /api/scenarios/: run a demo scenario on a copy of the current state (staff only).

Register with ``("scenarios", ScenarioViewSet, "scenario")`` in ``optimizer/api/urls.py`` ``routes``.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.response import Response

from core.parsers import StrictJSONParser
from optimizer.scenarios import OPTIONS_BY_SCENARIO, SCENARIOS, ScenarioError, run_and_record
from optimizer.scenarios.options import CARBON_PRICE_USD_PER_T, DELTA_C, HOURS


class ScenarioOptionsSerializer(serializers.Serializer):
    """Options of one scenario; each scenario reads the ones it knows (defaults: docs/scenarios.md)."""

    site = serializers.SlugField(required=False, max_length=40)
    delta_c = serializers.FloatField(required=False, min_value=DELTA_C[0], max_value=DELTA_C[1])
    hours = serializers.IntegerField(required=False, min_value=HOURS[0], max_value=HOURS[1])
    carbon_price_usd_per_t = serializers.FloatField(
        required=False, min_value=CARBON_PRICE_USD_PER_T[0], max_value=CARBON_PRICE_USD_PER_T[1]
    )
    apply = serializers.BooleanField(required=False, default=False)

    def to_internal_value(self, data):
        """An option no scenario takes is refused by name, like one this scenario does not take (never dropped)."""
        unknown = set(data) - set(self.fields) if isinstance(data, dict) else set()
        if unknown:
            raise serializers.ValidationError({key: ["No scenario takes this option."] for key in sorted(unknown)})
        return super().to_internal_value(data)


class ScenarioRequestSerializer(serializers.Serializer):
    scenario = serializers.ChoiceField(choices=SCENARIOS)
    options = ScenarioOptionsSerializer(required=False, default=dict)


class ScenarioResultSerializer(serializers.Serializer):
    """A ScenarioResult as JSON (read-only)."""

    scenario = serializers.CharField(read_only=True)
    title = serializers.CharField(read_only=True)
    start = serializers.DateTimeField(read_only=True)
    hours = serializers.IntegerField(read_only=True)
    columns = serializers.ListField(child=serializers.CharField(), read_only=True)
    rows = serializers.ListField(child=serializers.DictField(), read_only=True)
    summary = serializers.DictField(read_only=True)
    chart = serializers.DictField(read_only=True)
    notes = serializers.ListField(child=serializers.CharField(), read_only=True)
    streams = serializers.DictField(
        child=serializers.DictField(child=serializers.FloatField()),
        read_only=True,
        help_text="USD over the window by stream (optimizer/streams.py) of each plan compared; they add up to its "
        "profit.",
    )
    applied = serializers.BooleanField(read_only=True)
    seconds = serializers.FloatField(read_only=True)


class ScenarioViewSet(viewsets.ViewSet):
    """Run a scenario and answer its before/after table, summary and chart series. Staff only.

    Nothing live changes unless ``options.apply`` is true for ``maintenance`` (the failover is then kept).
    """

    permission_classes = (permissions.IsAuthenticated, permissions.IsAdminUser)
    parser_classes = (StrictJSONParser,)  # nested options: a form body would drop them silently (found by make fuzz)
    serializer_class = ScenarioRequestSerializer

    @extend_schema(request=ScenarioRequestSerializer, responses={200: ScenarioResultSerializer})
    def create(self, request):
        serializer = ScenarioRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        name = serializer.validated_data["scenario"]
        options = dict(serializer.validated_data.get("options") or {})
        apply = options.pop("apply", False)
        unknown = set(options) - set(OPTIONS_BY_SCENARIO[name])
        if unknown:
            raise serializers.ValidationError({"options": [f"{name} does not take {', '.join(sorted(unknown))}."]})
        if apply and name != "maintenance":
            raise serializers.ValidationError({"options": ["Only maintenance can be applied."]})
        try:
            result = run_and_record(name, apply=apply, actor=request.user, **options)
        except ScenarioError as error:
            raise serializers.ValidationError({"options": [str(error)]}) from error
        return Response(result.to_dict(), status=status.HTTP_200_OK)

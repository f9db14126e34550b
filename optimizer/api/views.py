"""API of decisions, for staff only: runs are internal economics, not customer data."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.response import Response

from core.parsers import StrictJSONParser
from optimizer.choices import RunTrigger
from optimizer.models import Allocation, OptimizationRun
from optimizer.services import request_optimization

from .filters import OptimizationRunFilterSet
from .serializers import OptimizationRunDetailSerializer, OptimizationRunRequestSerializer, OptimizationRunSerializer


class OptimizationRunViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Optimization runs, newest first; the detail adds inputs, breakdown, explanation and allocations.

    The list does not load allocations (a run holds sites x hardware models of them); the detail prefetches
    them with their site and hardware model in one query.
    """

    queryset = OptimizationRun.objects.select_related("requested_by")
    serializer_class = OptimizationRunSerializer
    filterset_class = OptimizationRunFilterSet
    permission_classes = (permissions.IsAuthenticated, permissions.IsAdminUser)
    # JSON only: a form body that names no field would queue a default run instead of failing (found by make fuzz).
    parser_classes = (StrictJSONParser,)
    ordering_fields = ("queued_at", "finished_at", "objective_usd_per_h", "revenue_usd_per_h", "solve_seconds")
    ordering = ("-queued_at", "-id")

    def get_queryset(self) -> QuerySet[OptimizationRun]:
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related(
                Prefetch("allocations", queryset=Allocation.objects.select_related("site", "hardware_model"))
            )
        return queryset

    def get_serializer_class(self):
        if self.action == "create":
            return OptimizationRunRequestSerializer
        return OptimizationRunDetailSerializer if self.action == "retrieve" else OptimizationRunSerializer

    @extend_schema(request=OptimizationRunRequestSerializer, responses={202: OptimizationRunSerializer})
    def create(self, request, *args, **kwargs):
        """Queue a run (the same service as the schedule, the command and the admin); answers 202 at once."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = request_optimization(
            trigger=RunTrigger.API, strategy=serializer.validated_data["strategy"], actor=request.user
        )
        return Response(OptimizationRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

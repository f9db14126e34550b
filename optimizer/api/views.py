"""Read-only API of decisions, for staff only: runs are internal economics, not customer data."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from rest_framework import permissions, viewsets

from optimizer.models import Allocation, OptimizationRun

from .filters import OptimizationRunFilterSet
from .serializers import OptimizationRunDetailSerializer, OptimizationRunSerializer


class OptimizationRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Optimization runs, newest first; the detail adds inputs, breakdown, explanation and allocations.

    The list does not load allocations (a run holds sites x hardware models of them); the detail prefetches
    them with their site and hardware model in one query.
    """

    queryset = OptimizationRun.objects.select_related("requested_by")
    serializer_class = OptimizationRunSerializer
    filterset_class = OptimizationRunFilterSet
    permission_classes = (permissions.IsAuthenticated, permissions.IsAdminUser)
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
        return OptimizationRunDetailSerializer if self.action == "retrieve" else OptimizationRunSerializer

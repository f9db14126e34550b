"""API of the commercial world: tiers (read), and the customer's quotes and contracts (tenant-scoped).

Tenancy lives in `get_queryset()`: a customer sees only its own quotes and contracts, staff see all, and another
customer's id answers 404. Writes are validated by strict serializers and handed to `sla.services`; refusals
map to HTTP codes here and nowhere else: capacity short or a state conflict -> 409, bad input -> 400, a body
over 16 KiB -> 413, too many writes -> 429 (scope "contracts", per user).
"""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from core.parsers import StrictJSONParser
from core.throttling import ScopedRateThrottle
from sla import services
from sla.models import (
    Contract,
    Customer,
    Quote,
    ServiceCreditRule,
    Tier,
)

from .filters import ContractFilterSet, QuoteFilterSet, TierFilterSet
from .parsers import CustomerTokenAuthentication
from .serializers import (
    CONTRACT_CREATE_BODY,
    CancelSerializer,
    CapacityRequestSerializer,
    ContractCreateSerializer,
    ContractSerializer,
    OriginalSlaRequestSerializer,
    OriginalSlaResponseSerializer,
    QuoteSerializer,
    TierSerializer,
)

WRITE_SCOPE = "contracts"
# The schema names the security schemes explicitly: CustomerTokenAuthentication is a TokenAuthentication that
# saves a query, and left to discovery drf-spectacular would register it as a second, clashing "tokenAuth".
AUTH_SCHEMES: list[dict[str, list[str]]] = [{"tokenAuth": []}, {"cookieAuth": []}]
# drf-spectacular puts `auth` in the operation's OpenAPI `security` as given: requirement objects like these, though
# its signature annotates it as a sequence of names.
with_auth_schemes = extend_schema(auth=AUTH_SCHEMES)  # type: ignore[arg-type]
REFUSED = OpenApiResponse(description="Refused: capacity is short, or the contract cannot make this move.")
BAD_INPUT = OpenApiResponse(description="Invalid input, with field-level messages.")


class CapacityShort(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Not enough capacity."
    default_code = "capacity_short"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class TierViewSet(viewsets.ReadOnlyModelViewSet):
    """SLA tiers in priority order, each with its service-credit schedule (two queries per page plus count)."""

    queryset = Tier.objects.prefetch_related(
        Prefetch("credit_rules", queryset=ServiceCreditRule.objects.order_by("-uptime_below_pct", "id"))
    )
    serializer_class = TierSerializer
    filterset_class = TierFilterSet
    lookup_field = "code"
    ordering_fields = ("priority", "code", "price_multiplier", "uptime_target_pct")
    ordering = ("priority", "code")


class CustomerWritesMixin(APIView):
    """Bounded JSON bodies, one-query token auth, and the per-user "contracts" throttle on writes (a base of a view,
    before the viewset or view classes it is used with)."""

    parser_classes = (StrictJSONParser,)
    authentication_classes = (CustomerTokenAuthentication, SessionAuthentication)
    throttle_scope = WRITE_SCOPE
    write_actions = frozenset({"create", "cancel", "post"})

    def get_throttles(self):
        """Writes: the per-user "contracts" scope, stricter than and therefore replacing the global user rate
        (one throttle is one cache round trip less on every quote and admission). Reads: the global rates."""
        action = getattr(self, "action", None) or self.request.method.lower()
        if action in self.write_actions:
            return [ScopedRateThrottle()]
        return [throttle() for throttle in api_settings.DEFAULT_THROTTLE_CLASSES]

    def customer(self) -> Customer:
        """The buyer behind the request: the caller's own customer account, or for staff the customer named by
        `customer` in the body (the dashboard's SLA panel buys for a chosen customer). A customer naming
        anyone, or staff without a customer account naming no one, is refused (403)."""
        chosen = self.request.data.get("customer") if isinstance(self.request.data, dict) else None
        if chosen is not None:
            if not self.request.user.is_staff:
                raise exceptions.PermissionDenied("Only staff may quote or buy for another customer.")
            try:  # the field the request serializers declare for it, so both answer alike
                pk = CapacityRequestSerializer().fields["customer"].run_validation(chosen)
            except exceptions.ValidationError as exc:
                raise exceptions.ValidationError({"customer": exc.detail}) from None
            customer = Customer.objects.filter(pk=pk).first()
            if customer is None:
                raise exceptions.ValidationError({"customer": ["No such customer."]})
            return customer
        user = self.request.user
        if not user.is_authenticated:  # never: the views require a signed-in caller (IsAuthenticated)
            raise exceptions.NotAuthenticated()
        try:
            return user.customer
        except Customer.DoesNotExist:
            raise exceptions.PermissionDenied("Only customer accounts can quote or buy capacity.") from None


@with_auth_schemes
@extend_schema_view(
    list=extend_schema(summary="Your quotes, newest first"),
    retrieve=extend_schema(summary="One of your quotes"),
)
class QuoteViewSet(CustomerWritesMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Price a request: per kWh and in total, with its breakdown, the sites it would run on, and a deadline.

    A quote reserves nothing; buy it with `POST /api/contracts/ {"quote": id}` before `valid_until`.
    Create costs two queries: the peaks committed on the sites, and the insert (the token, the tier, the sites with
    their limits and the token price are kept a few seconds per process: core.db.LocalReadCache).
    """

    queryset = Quote.objects.select_related("tier")
    serializer_class = QuoteSerializer
    filterset_class = QuoteFilterSet
    lookup_value_regex = r"\d+"
    ordering_fields = ("created_at", "valid_until", "price_usd_per_kwh", "capacity_kw")
    ordering = ("-created_at", "-id")

    def get_queryset(self):
        return super().get_queryset().for_user(self.request.user)

    @extend_schema(
        summary="Quote capacity",
        request=CapacityRequestSerializer,
        responses={201: QuoteSerializer, 400: BAD_INPUT, 409: REFUSED},
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        customer = self.customer()
        serializer = CapacityRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            quote = services.create_quote(customer=customer, request=serializer.capacity_request())
        except services.AdmissionRefused as exc:
            raise CapacityShort(str(exc)) from None
        return Response(QuoteSerializer.represent(quote), status=status.HTTP_201_CREATED)


@with_auth_schemes
@extend_schema_view(
    list=extend_schema(summary="Your contracts"),
    retrieve=extend_schema(summary="One contract with placements, uptime to date and credits"),
)
class ContractViewSet(CustomerWritesMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Contracts with where they run, measured uptime so far, service credits, preemption notices and downtime.

    A page costs a constant number of queries: count, contracts (uptime as subqueries), then one each for
    placements, credits, notices and downtimes. Buying a quote reads the quote, writes the contract with its
    placements and its history row (one statement on PostgreSQL), locks the customer and reads its contracts (its
    cap), then locks the plan's sites with their limits and reads the peaks on them, between BEGIN and COMMIT
    (sla.services.admission; pinned by tests/sla/test_contracts_api.py).
    """

    queryset = Contract.objects.select_related("tier", "customer").with_uptime().with_details()
    serializer_class = ContractSerializer
    filterset_class = ContractFilterSet
    lookup_value_regex = r"\d+"
    search_fields = ("status_reason",)
    ordering_fields = ("starts_at", "ends_at", "created_at", "capacity_kw", "id")
    ordering = ("-starts_at", "-id")

    def get_queryset(self):
        return super().get_queryset().for_user(self.request.user)

    @extend_schema(
        summary="Buy capacity (from a quote, or inline)",
        request=CONTRACT_CREATE_BODY,
        responses={201: ContractSerializer, 400: BAD_INPUT, 409: REFUSED},
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        customer = self.customer()
        serializer = ContractCreateSerializer(data=request.data, context={"customer": customer})
        serializer.is_valid(raise_exception=True)
        try:
            if "quote" in serializer.validated_data:
                contract = services.create_contract_from_quote(
                    quote=serializer.validated_data["quote"], actor=request.user
                )
            else:
                contract = services.create_contract(
                    customer=customer, request=serializer.capacity_request(), actor=request.user
                )
        except services.AdmissionRefused as exc:
            raise CapacityShort(str(exc)) from None
        except services.QuoteUnavailable as exc:
            raise Conflict(str(exc)) from None
        contract.customer = customer
        return Response(ContractSerializer.represent(contract), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Cancel a contract",
        request=CancelSerializer,
        responses={200: ContractSerializer, 400: BAD_INPUT, 409: REFUSED},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        contract = self.get_object()
        serializer = CancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = serializer.validated_data.get("reason") or "cancelled by the customer"
        try:
            services.cancel_contract(contract=contract, actor=request.user, reason=reason)
        except services.IllegalTransition as exc:
            raise Conflict(str(exc)) from None
        return Response(ContractSerializer(self.get_object()).data)


@with_auth_schemes
class OriginalSlaRequestView(CustomerWritesMixin, APIView):
    """The original product's `POST /api/sla/request`, now admitted like any contract (starts now).

    Same request and response field names as the original; bad input answers 400 and short capacity 409
    instead of a 500 or a silently overbooked site.
    """

    @extend_schema(
        summary="Request SLA capacity (original API)",
        request=OriginalSlaRequestSerializer,
        responses={201: OriginalSlaResponseSerializer, 400: BAD_INPUT, 409: REFUSED},
    )
    def post(self, request: Request) -> Response:
        customer = self.customer()
        serializer = OriginalSlaRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            contract = services.create_contract(
                customer=customer, request=serializer.capacity_request(), actor=request.user
            )
        except services.AdmissionRefused as exc:
            raise CapacityShort(str(exc)) from None
        body = OriginalSlaResponseSerializer(OriginalSlaResponseSerializer.from_contract(contract)).data
        return Response(body, status=status.HTTP_201_CREATED)

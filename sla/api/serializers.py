"""Serializers of the commercial world: tiers (read), quotes and contracts (customer writes go to services).

Input serializers are strict: unknown fields, booleans where numbers belong and values out of range are
refused with field-level messages, before anything touches the database (DRF runs no model constraints).
"""

from __future__ import annotations

import decimal
import functools
import re
from collections.abc import Callable, Mapping
from datetime import UTC, timedelta
from decimal import Decimal
from typing import ClassVar

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField, empty, get_error_detail
from rest_framework.relations import PKOnlyObject
from rest_framework.utils.serializer_helpers import BindingDict, ReturnDict

from core.db import LocalReadCache, PreparedRead, attnames, from_row, related_attnames
from sites.choices import MarketRegion
from sla.capacity import (
    MAX_CAPACITY_KW,
    MAX_DURATION_HOURS,
    MAX_START_AHEAD_DAYS,
    MIN_CAPACITY_KW,
    MIN_DURATION_HOURS,
    START_GRACE_SECONDS,
)
from sla.choices import ContractStatus, PlacementKind, TierCode
from sla.models import Contract, Customer, Quote, ServiceCreditRule, Tier
from sla.services import CapacityRequest

MAX_ID = 2**63 - 1  # larger ids cannot exist (bigint); refusing them keeps the database from raising


class ServiceCreditRuleSerializer(serializers.ModelSerializer):
    """Uptime below `uptime_below_pct` earns `credit_pct` of the month's charge back."""

    class Meta:
        model = ServiceCreditRule
        fields = ("uptime_below_pct", "credit_pct")
        read_only_fields = fields


class TierSerializer(serializers.ModelSerializer):
    credit_rules = ServiceCreditRuleSerializer(many=True, read_only=True)

    class Meta:
        model = Tier
        fields = (
            "id",
            "code",
            "name",
            "uptime_target_pct",
            "price_multiplier",
            "priority",
            "is_preemptible",
            "min_sites",
            "requires_n_minus_1",
            "credit_rules",
        )
        read_only_fields = fields


class SharedFieldsMixin(serializers.Serializer):
    """Fields built and bound once per serializer class and shared by all its instances (a base of a serializer).

    DRF deep-copies every declared field for each serializer instance (each nested one too): on a quote or an
    admission that cost more CPU than the rest of the (de)serialization. Sharing is safe for the serializers of
    this module because their fields hold no per-request state: they read no context, no `partial`, no parent
    data; `validate_<field>` hooks and `self.context` live on the serializer instance, which stays per request.
    """

    _shared_fields: ClassVar[dict[type, BindingDict]] = {}
    _readable: ClassVar[dict[type, list]] = {}
    _prototypes: ClassVar[dict[type, SharedFieldsMixin]] = {}

    @classmethod
    def represent(cls, instance) -> ReturnDict:
        """What `cls(instance).data` answers, without building a serializer for each answer: the representation
        of `instance` by the instance of `cls` each process keeps (its fields are the shared ones, and its
        `to_representation` reads nothing of the serializer but them). The kept instance is never handed out: the
        answer's `serializer` backlink is `cls(instance)`, DRF's, built when read (`Represented`)."""
        prototype = SharedFieldsMixin._prototypes.get(cls)
        if prototype is None:
            prototype = SharedFieldsMixin._prototypes[cls] = cls()
        return Represented(prototype.to_representation(instance), represented=(cls, instance))

    @property
    def fields(self) -> BindingDict:
        cls = type(self)
        fields = SharedFieldsMixin._shared_fields.get(cls)
        if fields is None:
            prototype = cls()
            fields = BindingDict(prototype)
            for name, field in prototype.get_fields().items():
                fields[name] = field
            SharedFieldsMixin._shared_fields[cls] = fields
        return fields

    def to_representation(self, instance):
        """DRF's `Serializer.to_representation` with the shared fields' readable ones listed once per class, and
        each value read by plain attribute access; anything else (a mapping, a callable, a missing attribute, a
        null on the way) goes through the field's own `get_attribute`, so the output is DRF's
        (test_the_output_serializers_answer_exactly_what_drfs_serializer_would compares the two)."""
        cls = type(self)
        readable = SharedFieldsMixin._readable.get(cls)
        if readable is None:
            fields = self.fields.items()
            readable = [(name, tuple(field.source_attrs), field) for name, field in fields if not field.write_only]
            SharedFieldsMixin._readable[cls] = readable
        plain = not isinstance(instance, Mapping)
        result = {}
        for name, source_attrs, field in readable:
            value = instance
            if plain:
                try:
                    for attr in source_attrs:
                        value = getattr(value, attr)
                        if value is None or callable(value):
                            value = _NOT_PLAIN
                            break
                except (AttributeError, ObjectDoesNotExist):
                    value = _NOT_PLAIN
            if value is _NOT_PLAIN or not plain:
                try:
                    value = field.get_attribute(instance)
                except SkipField:
                    continue
            check_for_none = value.pk if isinstance(value, PKOnlyObject) else value
            result[name] = None if check_for_none is None else field.to_representation(value)
        return result


class Represented(ReturnDict):
    """A `ReturnDict` whose `serializer` backlink, `cls(instance)` as DRF's `.data` gives, is built when first read.

    DRF's browsable API is its one reader (the instance for object permissions and PUT / PATCH forms, its `.data`
    for the form of the request's method, which caches `_data` on it): each answer gets a serializer of its own, as
    with DRF, none shared between answers or threads, and a JSON answer builds none (~6 us per answer)."""

    _serializer: serializers.BaseSerializer | None
    _represented: tuple[type[serializers.BaseSerializer], object] | None

    def __init__(self, data, *, serializer=None, represented=None):  # what ReturnDict.__init__ does, and one more
        dict.__init__(self, data)
        self._serializer = serializer  # given by ReturnDict's own constructions (`|`)
        self._represented = represented

    @property
    def serializer(self) -> serializers.BaseSerializer:
        if self._serializer is None:
            assert self._represented is not None
            cls, instance = self._represented
            self._serializer = cls(instance)
        return self._serializer

    @serializer.setter
    def serializer(self, serializer: serializers.BaseSerializer | None) -> None:
        self._serializer = serializer


_NOT_PLAIN = object()  # a value DRF's `Field.get_attribute` reads (see SharedFieldsMixin.to_representation)


# Input.


class StrictFieldsMixin:
    """Unknown fields are an error, not silently dropped: a typo in `capacity_kw` must not buy a default.

    A body every field of which reads plainly (`plain_reader`: a tier code, digits, an ISO date, an integer id; no
    unknown field, none missing) is validated without DRF's per-field machinery: each value is read as its field
    reads it, then the `validate_<field>` hooks run in DRF's order with DRF's error collection. Anything else (an
    error to word, a form DRF reads more subtly) goes through DRF's `Serializer.to_internal_value` unchanged, so the
    outcome is DRF's either way (test_a_plain_body_is_validated_exactly_as_drf_validates_it)."""

    plain_bodies: ClassVar[bool] = True  # False: every body through DRF's path (the tests compare the two)

    def to_internal_value(self, data):
        if type(data) is dict and self.plain_bodies and not getattr(self.root, "partial", False):
            readers = _plain_readers(self)
            if readers is not None:
                values = _read_plainly(readers, data)
                if values is not None:
                    return _run_hooks(self, readers, values)
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, Mapping) else []
        errors = {str(name)[:50]: ["Unknown field."] for name in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, Mapping):
                raise
            raise serializers.ValidationError({**exc.detail, **errors}) from None
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def run_validators(self, value):
        """DRF's `Serializer.run_validators` adds the read-only fields' defaults to the value, then runs the
        serializer's own validators (its Meta's) over it. A serializer class with neither has nothing to run, so its
        fields are not walked for defaults on every request; validators given to an instance, or a subclass's own
        `get_validators`, go through DRF's."""
        if "_validators" in self.__dict__ or not _nothing_to_validate(self):
            super().run_validators(value)


_NOTHING_TO_VALIDATE: dict[type, bool] = {}


def _nothing_to_validate(serializer) -> bool:
    """Whether a serializer class has no validators of its own (DRF's `Serializer.get_validators`, from Meta) and
    no read-only field with a default, i.e. whether DRF's `run_validators` does nothing for it (once per class:
    the strict serializers' fields are shared per class, SharedFieldsMixin)."""
    cls = type(serializer)
    nothing = _NOTHING_TO_VALIDATE.get(cls)
    if nothing is None:
        nothing = _NOTHING_TO_VALIDATE[cls] = (
            isinstance(serializer, SharedFieldsMixin)
            and cls.get_validators is serializers.Serializer.get_validators
            and cls.validators is serializers.Serializer.validators
            and not serializer.get_validators()
            and not any(field.read_only and field.default is not empty for field in serializer.fields.values())
        )
    return nothing


_UNDECIDED = object()  # a value a plain reader leaves to DRF's field (see StrictFieldsMixin)
_PLAIN_DIGITS = re.compile(r"[0-9]{1,40}(?:\.[0-9]{1,40})?")
_READERS: dict[type, list | None] = {}


def _bounds(field) -> tuple | None:
    """(min, max) of a field whose validators are only Django's Min/MaxValueValidator with fixed limits (either may
    be None), else None."""
    low = high = None
    for validator in field.validators:
        if type(validator) not in (MinValueValidator, MaxValueValidator) or callable(validator.limit_value):
            return None
        if type(validator) is MinValueValidator:
            low = validator.limit_value
        else:
            high = validator.limit_value
    return low, high


def _within(value, bounds) -> bool:
    """Whether Django's MinValueValidator / MaxValueValidator would pass `value` (they refuse `value < min` and
    `value > max`)."""
    low, high = bounds
    return not ((low is not None and value < low) or (high is not None and value > high))


def plain_reader(field) -> Callable[[object], object] | None:
    """How to read a plain value of `field` as `field.run_validation` reads it, or None for a field read only by DRF.

    The reader answers the validated value, or `_UNDECIDED` for anything it does not read plainly (which DRF's path
    then reads, and words the error of). Only these exact classes, whose `run_validation` is DRF's (with
    `core.numbers`' ASCII-digits guard): a choice (a string naming a choice; no validators), a decimal (ASCII digits
    with at most one point, or a non-negative int; DRF's own `validate_precision` and `quantize`), an integer (an
    int, not a bool) and a date-time (an ASCII string through DRF's own `to_internal_value`; no validators).
    Min/max validators are checked as Django's compare."""
    kind = type(field)
    if field.read_only or field.source == "*":
        return None
    if kind in (TierCodeField, RegionField) and not field.validators:
        choices = field.choice_strings_to_values
        return lambda data: choices.get(data, _UNDECIDED) if type(data) is str and data else _UNDECIDED
    if kind is serializers.DateTimeField and not field.validators:
        return functools.partial(_read_datetime, field)
    bounds = _bounds(field)
    if bounds is None:
        return None
    if kind is serializers.IntegerField:
        return lambda data: data if type(data) is int and _within(data, bounds) else _UNDECIDED
    if kind is NumberField and not field.localize:
        return functools.partial(_read_decimal, field, bounds)
    return None


def _read_datetime(field, data):
    if type(data) is not str or not data.isascii():
        return _UNDECIDED
    try:
        return field.to_internal_value(data)
    except serializers.ValidationError:
        return _UNDECIDED


def _read_decimal(field, bounds, data):
    text = str(data) if type(data) is int else data
    if type(text) is not str or _PLAIN_DIGITS.fullmatch(text) is None:
        return _UNDECIDED
    try:
        value = field.quantize(field.validate_precision(Decimal(text)))
    except serializers.ValidationError:
        return _UNDECIDED
    return value if _within(value, bounds) else _UNDECIDED


def _plain_readers(serializer) -> list | None:
    """(field, reader) for the serializer class's writable fields, in DRF's order, once per class; None when one
    of them has no plain reader (its fields are shared per class: SharedFieldsMixin)."""
    cls = type(serializer)
    if cls not in _READERS:
        readers = [(field, plain_reader(field)) for field in serializer._writable_fields]
        _READERS[cls] = None if any(reader is None for _, reader in readers) else readers
    return _READERS[cls]


def _read_plainly(readers: list, data: dict) -> dict | None:
    """The value of each field given in `data`, read plainly; None when one is not plain, a required field is
    missing, a missing one has a default, or `data` names a field the serializer does not have."""
    values = {}
    for field, read in readers:
        name = field.field_name
        if name in data:
            value = read(data[name])
            if value is _UNDECIDED:
                return None
            values[name] = value
        elif field.required or field.default is not empty:
            return None
    return values if len(values) == len(data) else None


def _run_hooks(serializer, readers: list, values: dict) -> dict:
    """The rest of DRF's `Serializer.to_internal_value` once every field's value is read: the `validate_<field>`
    hooks in field order, their errors collected per field as DRF collects them."""
    ret: dict = {}
    errors: dict = {}
    for field, _ in readers:
        name = field.field_name
        if name not in values:
            continue  # DRF: a missing optional field without a default raises SkipField before its hook
        validate_method = getattr(serializer, "validate_" + name, None)
        try:
            value = values[name] if validate_method is None else validate_method(values[name])
        except serializers.ValidationError as exc:
            errors[name] = exc.detail
        except DjangoValidationError as exc:
            errors[name] = get_error_detail(exc)
        except SkipField:
            pass
        else:
            serializer.set_value(ret, field.source_attrs, value)
    if errors:
        raise serializers.ValidationError(errors)
    return ret


class StrictSchema(OpenApiSerializerExtension):
    """The schema of a strict serializer's body says what it refuses: no other property (additionalProperties
    false), so a client, and the fuzzer generating bodies from it, sends only the declared fields."""

    target_class = StrictFieldsMixin
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        if direction == "request":
            schema["additionalProperties"] = False
            for name, field in self.target.fields.items():  # the decimals a number may have
                if isinstance(field, NumberField) and name in schema["properties"]:
                    schema["properties"][name]["multipleOf"] = float(Decimal(1).scaleb(-field.decimal_places))
        return schema


class NumberField(serializers.DecimalField):
    """A Decimal that refuses booleans (JSON true would otherwise read as the string "True" or 1).

    Input only: documented as a JSON number with its bounds (a string of digits is accepted too)."""

    default_error_messages = {"boolean": "A number is required, not true or false."}

    def __init__(self, **kwargs):
        super().__init__(coerce_to_string=False, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("boolean")
        return super().to_internal_value(data)


def _capacity_field(**kwargs) -> NumberField:
    return NumberField(max_digits=12, decimal_places=3, min_value=MIN_CAPACITY_KW, max_value=MAX_CAPACITY_KW, **kwargs)


def _duration_field(**kwargs) -> NumberField:
    return NumberField(
        max_digits=6, decimal_places=2, min_value=MIN_DURATION_HOURS, max_value=MAX_DURATION_HOURS, **kwargs
    )


def _customer_field() -> serializers.IntegerField:
    """Staff name the buyer by id on every buying endpoint (quotes, contracts, the original request) alike."""
    return serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="Staff only: the id of the customer to quote or buy for (default: your own customer account).",
    )


@extend_schema_field({"type": "string", "enum": TierCode.values, "description": "Tier code."})
class TierCodeField(serializers.ChoiceField):
    """A tier code; documented inline so the schema does not name the TierCode choices twice."""

    def __init__(self, **kwargs):
        super().__init__(choices=TierCode.choices, **kwargs)


@extend_schema_field({"type": "string", "enum": ["", *MarketRegion.values], "description": "Market region."})
class RegionField(serializers.ChoiceField):
    """A market region or blank; documented inline so the schema does not name the MarketRegion choices twice."""

    def __init__(self, **kwargs):
        super().__init__(choices=MarketRegion.choices, allow_blank=True, **kwargs)


TIER_READ = PreparedRead(
    lambda code: Tier.objects.filter(code=code).values_list(*attnames(Tier)), keep_cursor=True, code=str
)
TIERS = LocalReadCache("tiers", models=(Tier,))
QUOTE_READ = PreparedRead(
    lambda pk, customer: Quote.objects.filter(pk=pk, customer_id=customer).values_list(
        *attnames(Quote), *related_attnames("tier__", Tier)
    ),
    keep_cursor=True,  # one row, on every purchase
    pk=int,
    customer=int,
)


def offered_tier(code: str) -> Tier:
    """The Tier row for a valid code, or a field error when that tier is not set up (one prepared query, its rows
    kept for a few seconds per process: `TIERS`)."""
    rows = TIERS.get(code, lambda: TIER_READ.rows(code=code))
    if not rows:
        raise serializers.ValidationError(f"Tier {code!r} is not offered.")
    return from_row(Tier, rows[0])[0]


def customers_quote(pk: int, customer: Customer) -> Quote | None:
    """The customer's quote `pk` with its tier (one prepared query), or None when it has no such quote."""
    rows = QUOTE_READ.rows(pk=pk, customer=customer.pk)
    if not rows:
        return None
    quote, at = from_row(Quote, rows[0])
    quote.tier = from_row(Tier, rows[0], at)[0]
    quote.customer = customer
    return quote


class CapacityRequestSerializer(StrictFieldsMixin, SharedFieldsMixin, serializers.Serializer):
    """A request for capacity: tier, kW, start (ISO 8601, default now) and duration, optional region."""

    tier = TierCodeField(help_text="Tier code.")
    capacity_kw = _capacity_field(help_text="Inference IT power in kW.")
    starts_at = serializers.DateTimeField(required=False, help_text="ISO 8601 start; default now; not in the past.")
    duration_hours = _duration_field(help_text="Length of the window in hours.")
    region_preference = RegionField(required=False, help_text="Preferred market region.")
    customer = _customer_field()

    def validate_tier(self, value: str) -> Tier:
        return offered_tier(value)

    def validate_starts_at(self, value):
        now = timezone.now()
        if value < now - timedelta(seconds=START_GRACE_SECONDS):
            raise serializers.ValidationError("The start must not be in the past.")
        if value > now + timedelta(days=MAX_START_AHEAD_DAYS):
            raise serializers.ValidationError(f"The start must be within {MAX_START_AHEAD_DAYS} days from now.")
        return value

    def capacity_request(self) -> CapacityRequest:
        """The validated request; a start within the grace period (or none) means now."""
        data = self.validated_data
        start = max(data.get("starts_at") or timezone.now(), timezone.now())
        return CapacityRequest(
            tier=data["tier"],
            capacity_kw=data["capacity_kw"],
            starts_at=start,
            ends_at=start + timedelta(seconds=int(data["duration_hours"] * 3600)),
            region_preference=data.get("region_preference") or "",
        )


def _quote_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1, max_value=MAX_ID, help_text="Id of your own unexpired quote.", **kwargs
    )


class QuotePurchaseSerializer(StrictFieldsMixin, SharedFieldsMixin, serializers.Serializer):
    """Buy a quote: `{"quote": id}` alone (staff may name the customer); the quote fixes everything else."""

    # Documents this form of the body only: ContractCreateSerializer validates both forms (CONTRACT_CREATE_BODY).
    quote = _quote_field()
    customer = _customer_field()


class ContractCreateSerializer(CapacityRequestSerializer):
    """Buy capacity from a quote (`{"quote": id}` alone) or inline with the quote's fields."""

    quote = _quote_field(required=False)
    tier = TierCodeField(required=False, help_text="Tier code (inline).")
    capacity_kw = _capacity_field(required=False, help_text="Inference IT power in kW (inline).")
    duration_hours = _duration_field(required=False, help_text="Length of the window in hours (inline).")

    INLINE_REQUIRED = ("tier", "capacity_kw", "duration_hours")

    def validate_quote(self, value: int) -> Quote:
        customer = self.context["customer"]
        # Whether it was already used is left to the unique Contract.quote (409 from the view): checking it here
        # would cost a join on every purchase to tell apart a case the database must catch anyway.
        quote = customers_quote(value, customer)
        if quote is None:
            raise serializers.ValidationError("No such quote.")
        if not quote.is_valid_at(timezone.now()):
            raise serializers.ValidationError(
                f"This quote expired at {quote.valid_until:%Y-%m-%d %H:%M:%S} UTC; ask for a new one."
            )
        return quote

    def validate(self, attrs):
        if "quote" in attrs:
            others = sorted(name for name in self.initial_data if name not in ("quote", "customer"))
            if others:
                raise serializers.ValidationError(
                    {name: ["Not allowed with a quote: the quote fixes it."] for name in others}
                )
            return attrs
        missing = [name for name in self.INLINE_REQUIRED if name not in attrs]
        if missing:
            raise serializers.ValidationError({name: ["This field is required."] for name in missing})
        return attrs


# The body of POST /api/contracts/ as documented: exactly one of the two forms ContractCreateSerializer accepts
# (oneOf, each form closed by additionalProperties false), so a client, and the fuzzer, sends one or the other.
CONTRACT_CREATE_BODY = PolymorphicProxySerializer(
    component_name="ContractCreate",
    serializers=[QuotePurchaseSerializer, CapacityRequestSerializer],
    resource_type_field_name=None,
)


class CancelSerializer(StrictFieldsMixin, SharedFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)


class OriginalSlaRequestSerializer(StrictFieldsMixin, SharedFieldsMixin, serializers.Serializer):
    """The original product's `POST /api/sla/request` body: the window starts now."""

    tier = TierCodeField()
    power_requirement = _capacity_field(help_text="kW of inference capacity.")
    duration_hours = _duration_field()
    customer = _customer_field()

    def validate_tier(self, value: str) -> Tier:
        return offered_tier(value)

    def capacity_request(self) -> CapacityRequest:
        data = self.validated_data
        start = timezone.now()
        return CapacityRequest(
            tier=data["tier"],
            capacity_kw=data["power_requirement"],
            starts_at=start,
            ends_at=start + timedelta(seconds=int(data["duration_hours"] * 3600)),
        )


# Output. Plain Serializers with declared fields (not ModelSerializers): they answer every quote and admission,
# and introspecting the model for each response cost more CPU than the rest of the serialization.


class OutputDecimalField(serializers.DecimalField):
    """DRF's DecimalField with the exponent it quantizes to (`Decimal(".1") ** decimal_places`) worked out once per
    field instead of for every value of every answer. The power of 0.1 has a one-digit coefficient, so it is exact in
    any context: the answer is DRF's (test_an_output_decimal_answers_what_drfs_decimal_field_answers)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.exponent = None if self.decimal_places is None else Decimal(".1") ** self.decimal_places

    def quantize(self, value):
        """DRF's `DecimalField.quantize`, with the exponent kept."""
        if self.exponent is None:
            return value
        context = decimal.getcontext().copy()
        if self.max_digits is not None:
            context.prec = self.max_digits
        return value.quantize(self.exponent, rounding=self.rounding, context=context)


def _datetime(**kwargs) -> serializers.DateTimeField:
    """An instant in UTC (the API's time zone, settings.TIME_ZONE; nothing activates another): with the zone given,
    DRF does not look the current one up for every date of every answer."""
    return serializers.DateTimeField(read_only=True, default_timezone=UTC, **kwargs)


def _kw(**kwargs) -> serializers.DecimalField:
    return OutputDecimalField(max_digits=12, decimal_places=3, read_only=True, **kwargs)


def _usd(**kwargs) -> serializers.DecimalField:
    return OutputDecimalField(max_digits=16, decimal_places=2, read_only=True, **kwargs)


def _usd_per_kwh(**kwargs) -> serializers.DecimalField:
    return OutputDecimalField(max_digits=12, decimal_places=6, read_only=True, **kwargs)


class QuoteSiteSerializer(SharedFieldsMixin, serializers.Serializer):
    site = serializers.CharField(read_only=True, help_text="Site code.")
    name = serializers.CharField(read_only=True)
    market_region = serializers.CharField(read_only=True)
    capacity_kw = _kw()


class PriceBreakdownSerializer(SharedFieldsMixin, serializers.Serializer):
    """Term pricing: USD per kW-month = base rate x tier multiplier x utilization factor; USD/kWh = that / 730.

    The token price and base value are references (what a kWh of the placement earns when every token sells at the
    list price), not part of the price, which does not move with the hour's markets.
    """

    base_rate_usd_per_kw_month = _usd(help_text="Rate card at 1.0x (setting SLA_BASE_RATE_USD_PER_KW_MONTH).")
    price_usd_per_kw_month = _usd()
    token_price_usd_per_mtok = OutputDecimalField(max_digits=10, decimal_places=4, read_only=True)
    token_price_source = serializers.CharField(read_only=True, help_text="market (newest stored price) or default.")
    tokens_per_s_per_kw = OutputDecimalField(max_digits=10, decimal_places=2, read_only=True)
    base_value_usd_per_kwh = _usd_per_kwh()
    tier_multiplier = OutputDecimalField(max_digits=5, decimal_places=2, read_only=True)
    utilization_pct = OutputDecimalField(max_digits=5, decimal_places=2, read_only=True)
    utilization_factor = OutputDecimalField(max_digits=6, decimal_places=4, read_only=True)


class TermsSerializer(SharedFieldsMixin, serializers.Serializer):
    """The terms a quote is bought on (a contract keeps its quote's)."""

    cancellation_fee_pct = OutputDecimalField(
        max_digits=5,
        decimal_places=2,
        read_only=True,
        help_text="Cancelling costs this % of the quoted total of the part of the window not yet served "
        "(all of it before the start, none after the end). Setting SLA_CANCELLATION_FEE_PCT.",
    )
    cancellation_policy = serializers.SerializerMethodField()

    def get_cancellation_policy(self, quote: Quote) -> str:
        return cancellation_policy(quote.cancellation_fee_pct)


def cancellation_policy(fee_pct) -> str:
    """The cancellation policy in words, as a quote's terms state it."""
    return (
        f"Cancelling costs {fee_pct} % of the quoted total of the part of the window not yet served: all of it "
        "before the start, none after the end. The fee is set when the contract is cancelled."
    )


class QuoteSerializer(SharedFieldsMixin, serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    tier = serializers.CharField(source="tier.code", read_only=True)
    capacity_kw = _kw()
    starts_at = _datetime()
    ends_at = _datetime()
    duration_hours = OutputDecimalField(max_digits=8, decimal_places=2, read_only=True)
    region_preference = serializers.CharField(read_only=True)
    price_usd_per_kwh = _usd_per_kwh()
    total_usd = _usd()
    breakdown = PriceBreakdownSerializer(source="*", read_only=True)
    sites = QuoteSiteSerializer(many=True, read_only=True, help_text="Where it would be placed now.")
    terms = TermsSerializer(source="*", read_only=True)
    valid_until = _datetime()
    created_at = _datetime()


class PlacementSerializer(SharedFieldsMixin, serializers.Serializer):
    site = serializers.CharField(source="site.code", read_only=True)
    capacity_kw = _kw()
    valid_from = _datetime()
    valid_to = _datetime(allow_null=True)
    kind = serializers.ChoiceField(
        choices=PlacementKind.choices,
        read_only=True,
        help_text="What opened this row: admission, failover, migration (optimizer), return, replacement.",
    )
    moved_from = serializers.CharField(
        source="moved_from.code",
        read_only=True,
        allow_null=True,
        help_text="Code of the site the kW came off (failover, migration, return); null for an admission.",
    )
    reason = serializers.CharField(read_only=True)


class ServiceCreditSerializer(SharedFieldsMixin, serializers.Serializer):
    month = serializers.DateField(read_only=True)
    uptime_pct = OutputDecimalField(max_digits=6, decimal_places=3, read_only=True)
    credit_pct = OutputDecimalField(max_digits=5, decimal_places=2, read_only=True)
    charge_usd = _usd()
    credit_usd = _usd()
    issued_at = _datetime()


class PreemptionNoticeSerializer(SharedFieldsMixin, serializers.Serializer):
    site = serializers.CharField(source="site.code", read_only=True)
    capacity_kw = _kw()
    issued_at = _datetime()
    effective_at = _datetime()
    reason = serializers.CharField(read_only=True)


class DowntimeSerializer(SharedFieldsMixin, serializers.Serializer):
    site = serializers.CharField(source="site.code", read_only=True)
    unserved_kw = _kw()
    started_at = _datetime()
    ended_at = _datetime(allow_null=True)
    reason = serializers.CharField(read_only=True)


class ContractSerializer(SharedFieldsMixin, serializers.Serializer):
    """A contract with where it runs, its measured uptime so far and the credits it earned."""

    id = serializers.IntegerField(read_only=True)
    customer = serializers.CharField(source="customer.name", read_only=True)
    tier = serializers.CharField(source="tier.code", read_only=True)
    status = serializers.ChoiceField(choices=ContractStatus.choices, read_only=True)
    capacity_kw = _kw()
    starts_at = _datetime()
    ends_at = _datetime()
    duration_hours = OutputDecimalField(max_digits=8, decimal_places=2, read_only=True)
    region_preference = serializers.CharField(read_only=True)
    quote = serializers.IntegerField(source="quote_id", read_only=True, allow_null=True)
    quoted_price_usd_per_kwh = _usd_per_kwh()
    quoted_total_usd = _usd()
    admitted_at = _datetime(allow_null=True)
    cancellation_fee_pct = OutputDecimalField(
        max_digits=5, decimal_places=2, read_only=True, help_text="Its terms' cancellation fee (see a quote's terms)."
    )
    cancellation_fee_usd = OutputDecimalField(
        max_digits=16,
        decimal_places=2,
        read_only=True,
        allow_null=True,
        help_text="What cancelling cost; null unless cancelled.",
    )
    status_changed_at = _datetime(allow_null=True)
    status_reason = serializers.CharField(read_only=True)
    created_at = _datetime()
    placements = PlacementSerializer(many=True, read_only=True, source="placement_list")  # with_details()
    uptime_to_date_pct = OutputDecimalField(
        max_digits=7,
        decimal_places=3,
        read_only=True,
        allow_null=True,
        help_text="Served kWh over kWh owed every minute since the start (a minute with no delivery record is "
        "undelivered); null before the service starts.",
    )
    delivered_kwh = OutputDecimalField(max_digits=20, decimal_places=3, read_only=True)
    committed_kwh = OutputDecimalField(max_digits=20, decimal_places=3, read_only=True)
    service_credits = ServiceCreditSerializer(many=True, read_only=True, source="service_credit_list")
    preemption_notices = PreemptionNoticeSerializer(many=True, read_only=True, source="preemption_notice_list")
    downtimes = DowntimeSerializer(many=True, read_only=True, source="downtime_list")


class OriginalSlaResponseSerializer(SharedFieldsMixin, serializers.Serializer):
    """The original product's response fields (numbers as JSON numbers), plus the contract it created."""

    sla_tier = serializers.CharField()
    power_allocated = serializers.FloatField(help_text="kW admitted.")
    optimal_site = serializers.CharField(help_text="Code of the site carrying the largest share.")
    estimated_uptime = serializers.FloatField(allow_null=True, help_text="Tier target in percent; null for Spot.")
    price_multiplier = serializers.FloatField()
    contract_id = serializers.IntegerField()
    status = serializers.CharField()
    sites = serializers.ListField(child=serializers.CharField())
    price_usd_per_kwh = serializers.DecimalField(max_digits=12, decimal_places=6)

    @staticmethod
    def from_contract(contract: Contract) -> dict:
        placements = sorted(contract.placement_list, key=lambda p: -p.capacity_kw)  # as admission leaves it
        target = contract.tier.uptime_target_pct
        return {
            "sla_tier": contract.tier.code,
            "power_allocated": float(contract.capacity_kw),
            "optimal_site": placements[0].site.code if placements else "",
            "estimated_uptime": float(target) if target is not None else None,
            "price_multiplier": float(contract.tier.price_multiplier),
            "contract_id": contract.pk,
            "status": contract.status,
            "sites": [p.site.code for p in placements],
            "price_usd_per_kwh": contract.quoted_price_usd_per_kwh,
        }

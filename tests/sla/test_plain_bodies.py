"""The strict input serializers read a plain body (StrictFieldsMixin's plain readers) without DRF's per-field
machinery; whatever the body, the outcome must be DRF's: the same validated values (type, value, exponent, time
zone) or the same errors (messages and codes, per field, in order)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rest_framework import serializers

from sla.api.serializers import (
    CancelSerializer,
    CapacityRequestSerializer,
    ContractCreateSerializer,
    OriginalSlaRequestSerializer,
    QuotePurchaseSerializer,
    StrictFieldsMixin,
    plain_reader,
)
from sla.models import Quote
from sla.services import CapacityRequest, create_quote
from tests.factories import T0

pytestmark = pytest.mark.django_db

TIERS = ["standard", "premium", "spot", "STANDARD", "gold", "", " standard", 1, None, True, ["standard"]]
NUMBERS = [
    "10", "2", 10, "0.001", "0.0005", "1.2345", "100000", "100001", "100000.000", "8760", "8761", "0", "-5", -5,
    "05", "5.", ".5", "+5", " 5", "5 ", "1e3", "1E-2", "NaN", "Infinity", "-Infinity", "\u0661\u0660", "\uff15",
    "12345678901.5", "0.50", 10**40, "9" * 45, 1.5, 2.0, True, False, None, "", [10], {"kw": 1},
]  # fmt: skip
STARTS = [
    "2026-06-01T05:00:00Z", "2026-06-01T05:00:00+02:00", "2026-06-01T05:00:00", "2026-06-01", "2026-05-31T23:00:00Z",
    "2027-06-02T00:00:00Z", "2026-06-01T05:00:00.123456-03:30", "next tuesday", "\u0662026-06-01T05:00:00Z", "", 5,
    None, "2026-13-01T00:00:00Z",
]  # fmt: skip
REGIONS = ["europe", "americas", "", "mars", "EUROPE", None, 3]
IDS = [1, 2, 0, -1, "1", "1.0", 1.0, 2**63 - 1, 2**63, True, None, "", "\u0661", [1]]


def outcome(serializer_class, body, plain: bool, **kwargs):
    """What the serializer makes of `body`, in a form that tells apart what `==` would not (Decimal('2') and
    Decimal('2.00'), time zones, error codes)."""
    StrictFieldsMixin.plain_bodies = plain
    try:
        serializer = serializer_class(data=body, **kwargs)
        valid = serializer.is_valid()
    finally:
        StrictFieldsMixin.plain_bodies = True
    if not valid:
        return ("errors", serializer.errors, serializer.errors and _codes(serializer.errors))
    return ("valid", [(name, _exact(value)) for name, value in serializer.validated_data.items()])


def _codes(errors):
    return {name: [(str(e), e.code) for e in details] for name, details in errors.items()}


def _exact(value):
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), repr(value.tzinfo))
    if hasattr(value, "_meta"):
        return (type(value).__name__, value.pk)
    return (type(value).__name__, repr(value))


def bodies(fields: dict[str, list]):
    """Every field alone with each of its values, every pair of fields with a few values each, and the whole
    body with each field's values in turn (the others good), plus the whole body with an unknown field."""
    names = list(fields)
    good = {name: values[0] for name, values in fields.items()}
    yield {}
    yield dict(good)
    yield {**good, "extra": 1}
    for name in names:
        for value in fields[name]:
            yield {name: value}
            yield {**good, name: value}
            rest = dict(good)
            del rest[name]
            yield rest
    for a, b in itertools.combinations(names, 2):
        for va, vb in itertools.product(fields[a][:5], fields[b][:5]):
            yield {a: va, b: vb}


def assert_same_as_drf(serializer_class, fields, **kwargs):
    compared = plain = 0
    for body in bodies(fields):
        ours, drfs = outcome(serializer_class, body, True, **kwargs), outcome(serializer_class, body, False, **kwargs)
        assert ours == drfs, body
        compared += 1
        plain += ours[0] == "valid"
    # both kinds of outcome were compared (how many bodies are valid depends on which ids name quotes)
    assert plain >= 3 and compared - plain >= 3


@pytest.fixture
def at_t0(frozen):
    return T0


def test_a_plain_body_is_validated_exactly_as_drf_validates_it(fleet, at_t0):
    fields = {
        "tier": TIERS,
        "capacity_kw": NUMBERS,
        "starts_at": STARTS,
        "duration_hours": NUMBERS,
        "region_preference": REGIONS,
        "customer": IDS,
    }
    assert_same_as_drf(CapacityRequestSerializer, fields)
    original = {"tier": TIERS, "power_requirement": NUMBERS, "duration_hours": NUMBERS, "customer": IDS}
    assert_same_as_drf(OriginalSlaRequestSerializer, original)
    assert CancelSerializer(data={"reason": "ended"}).is_valid()  # a CharField has no plain reading: DRF's path
    assert plain_reader(CancelSerializer().fields["reason"]) is None


def test_a_purchase_body_is_validated_exactly_as_drf_validates_it(fleet, customer, outsider, at_t0):
    request = CapacityRequest(
        tier=fleet.standard, capacity_kw=Decimal("10"), starts_at=T0, ends_at=T0 + timedelta(hours=2)
    )
    own = create_quote(customer=customer, request=request)
    theirs = create_quote(customer=outsider, request=request)
    expired = create_quote(customer=customer, request=request)
    Quote.objects.filter(pk=expired.pk).update(valid_until=T0 - timedelta(seconds=1))
    ids = [own.pk, theirs.pk, expired.pk, *IDS]
    context = {"context": {"customer": customer}}
    assert_same_as_drf(QuotePurchaseSerializer, {"quote": ids, "customer": IDS})
    inline = {"quote": ids, "tier": TIERS[:6], "capacity_kw": NUMBERS[:12], "starts_at": STARTS[:6], "customer": IDS}
    assert_same_as_drf(ContractCreateSerializer, inline, **context)
    assert outcome(ContractCreateSerializer, {"quote": own.pk}, True, **context)[1] == [("quote", ("Quote", own.pk))]


def test_a_plain_body_skips_drfs_per_field_validation(fleet, customer, at_t0, monkeypatch):
    """A quote's and a purchase's usual bodies are read without DRF's `Serializer.to_internal_value` (its loop
    over every field, a SkipField raised for each one absent); a body it words differently still goes through it."""
    calls = []
    drfs = serializers.Serializer.to_internal_value

    def counting(self, data):
        calls.append(dict(data))
        return drfs(self, data)

    monkeypatch.setattr(serializers.Serializer, "to_internal_value", counting)
    quote_body = {
        "tier": "standard",
        "capacity_kw": "10",
        "starts_at": "2026-06-01T05:00:00+00:00",
        "duration_hours": "2",
    }
    serializer = CapacityRequestSerializer(data=quote_body)
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data["capacity_kw"] == Decimal("10.000")
    assert serializer.validated_data["starts_at"] == datetime(2026, 6, 1, 5, tzinfo=UTC)
    request = CapacityRequest(
        tier=fleet.standard, capacity_kw=Decimal("10"), starts_at=T0, ends_at=T0 + timedelta(hours=2)
    )
    quote = create_quote(customer=customer, request=request)
    purchase = ContractCreateSerializer(data={"quote": quote.pk}, context={"customer": customer})
    assert purchase.is_valid(), purchase.errors
    assert calls == []
    assert CapacityRequestSerializer(data={**quote_body, "capacity_kw": " 10"}).is_valid()  # DRF strips it
    assert calls == [{**quote_body, "capacity_kw": " 10"}]


def test_only_fields_with_a_known_reading_are_read_plainly():
    """A field class other than the ones whose reading is known (a subclass could override it), a validator other
    than fixed min / max bounds, or a default leave the field, and so the serializer, to DRF."""

    class Subclassed(serializers.IntegerField):
        pass

    assert plain_reader(serializers.IntegerField(min_value=1)) is not None
    assert plain_reader(Subclassed(min_value=1)) is None
    assert plain_reader(serializers.IntegerField(min_value=lambda: 1)) is None
    assert plain_reader(serializers.IntegerField(validators=[lambda value: None])) is None
    assert plain_reader(serializers.DateTimeField(validators=[lambda value: None])) is None
    assert plain_reader(serializers.CharField()) is None
    assert plain_reader(serializers.IntegerField(read_only=True)) is None


def test_a_strict_serializer_with_nothing_to_validate_does_not_walk_its_fields_for_defaults(
    fleet, customer, at_t0, monkeypatch
):
    """DRF's Serializer.run_validators collects the read-only fields' defaults (a walk over every field) for the
    serializer's own validators; the quote's and the purchase's bodies have neither, so nothing is walked. Fails
    before: _read_only_defaults ran for every body."""
    walked = []
    defaults = serializers.Serializer._read_only_defaults
    monkeypatch.setattr(
        serializers.Serializer, "_read_only_defaults", lambda self: walked.append(self) or defaults(self)
    )
    request = CapacityRequest(
        tier=fleet.standard, capacity_kw=Decimal("10"), starts_at=T0, ends_at=T0 + timedelta(hours=2)
    )
    quote = create_quote(customer=customer, request=request)
    body = {"tier": "standard", "capacity_kw": "10", "starts_at": "2026-06-01T05:00:00Z", "duration_hours": 4}
    assert CapacityRequestSerializer(data=body).is_valid()
    assert ContractCreateSerializer(data={"quote": quote.pk}, context={"customer": customer}).is_valid()
    assert CapacityRequestSerializer(data={**body, "capacity_kw": " 10"}).is_valid()  # DRF's path, the same
    assert walked == []


class _Checked(CapacityRequestSerializer):
    class Meta:
        validators = [lambda attrs: _refuse(attrs)]


def _refuse(attrs):
    if attrs["duration_hours"] > 3:
        raise serializers.ValidationError("Too long for this test.")


class _WithReadOnlyDefault(CapacityRequestSerializer):
    origin = serializers.CharField(read_only=True, default="api")

    class Meta:
        validators = [lambda attrs: _needs_origin(attrs)]


def _needs_origin(attrs):
    if attrs.get("origin") != "api":
        raise serializers.ValidationError("The read-only default was not passed to the validators.")


@pytest.mark.parametrize("serializer_class", [_Checked, _WithReadOnlyDefault])
def test_a_strict_serializer_with_validators_still_runs_them_as_drf_does(fleet, at_t0, serializer_class):
    body = {"tier": "standard", "capacity_kw": "10", "starts_at": "2026-06-01T05:00:00Z", "duration_hours": 4}
    assert outcome(serializer_class, body, plain=True) == outcome(serializer_class, body, plain=False)
    given = CapacityRequestSerializer(data=body, validators=[_refuse])  # validators given to the instance
    assert not given.is_valid() and given.errors == {"non_field_errors": ["Too long for this test."]}
    checked = _Checked(data=body)
    assert not checked.is_valid() and checked.errors == {"non_field_errors": ["Too long for this test."]}
    assert _WithReadOnlyDefault(data=body).is_valid()

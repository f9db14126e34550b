"""The device registry: registering and importing devices, inventory that follows them, the kill switch."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction

from sites.models import HardwareModel, Site, SiteInventory

from ..choices import DeviceStatus, Driver
from ..models import DEFAULT_PORTS, Device, SiteFleet

# What a dispatch round or a poll learns of a device (`save_device_states`).
STATE_FIELDS = ("status", "status_reason", "is_running", "running_changed_at", "power_w", "last_seen_at", "placements")
CSV_COLUMNS = ("name", "site", "hardware_model", "driver", "address", "port", "firmware_model", "credentials_ref")
REQUIRED_COLUMNS = ("name", "site", "hardware_model", "driver", "address")


class ImportRejected(ValueError):
    """A CSV that cannot be imported; `errors` lists `line N: field: message` for every bad row."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors[:20]))
        self.errors = errors


def _check_kind(device: Device) -> None:
    miner_driver = device.driver != Driver.NODE_AGENT
    if device.hardware_model.is_miner != miner_driver:
        raise ValidationError({"driver": f"{device.get_driver_display()} does not drive a {device.hardware_model}."})


def _build(fields: dict, sites: dict[str, Site], models: dict[str, HardwareModel]) -> Device:
    errors = {}
    site = sites.get(fields.get("site", ""))
    if site is None:
        errors["site"] = f"Unknown site {fields.get('site')!r}."
    hardware = models.get(fields.get("hardware_model", ""))
    if hardware is None:
        errors["hardware_model"] = f"Unknown hardware model {fields.get('hardware_model')!r}."
    port = fields.get("port") or DEFAULT_PORTS.get(fields.get("driver", ""), 0)
    try:
        port = int(port)
    except (TypeError, ValueError):
        errors["port"] = "A port is a whole number."
    if errors:
        raise ValidationError(errors)
    device = Device(
        site=site,
        hardware_model=hardware,
        name=fields.get("name", "").strip(),
        driver=fields.get("driver", "").strip(),
        address=fields.get("address", "").strip(),
        port=port,
        firmware_model=(fields.get("firmware_model") or "").strip(),
        credentials_ref=(fields.get("credentials_ref") or "").strip(),
    )
    device.full_clean(validate_unique=False, validate_constraints=False)
    _check_kind(device)
    return device


def _lookups() -> tuple[dict[str, Site], dict[str, HardwareModel]]:
    return {s.code: s for s in Site.objects.all()}, {h.code: h for h in HardwareModel.objects.all()}


@transaction.atomic
def register_device(**fields) -> Device:
    """Register one device (fields as the CSV columns); raises ValidationError with field messages."""
    sites, models = _lookups()
    device = _build(fields, sites, models)
    device.validate_unique()
    device.validate_constraints()
    device.save()
    SiteFleet.objects.get_or_create(site=device.site)
    sync_inventory(site_ids=[device.site_id])
    return device


def _message(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return " ".join(error.messages)


@transaction.atomic
def import_devices_csv(*, text: str) -> int:
    """Import devices from CSV text (header row, `CSV_COLUMNS`); all rows or none. Returns how many were created.

    Every row is checked (fields, kind of driver against the hardware, duplicate names and endpoints in the file
    and against the registry) before anything is written; a bad file raises `ImportRejected` with every error.
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ImportRejected([f"line 1: missing columns: {', '.join(missing)}"])
    sites, models = _lookups()
    devices, errors = [], []
    names, endpoints = set(), set()
    for line, row in enumerate(reader, start=2):
        try:
            device = _build(row, sites, models)
        except ValidationError as exc:
            errors.append(f"line {line}: {_message(exc)}")
            continue
        if device.name in names:
            errors.append(f"line {line}: name: {device.name} appears twice in the file.")
        if (device.address, device.port) in endpoints:
            errors.append(f"line {line}: address: {device.address}:{device.port} appears twice in the file.")
        names.add(device.name)
        endpoints.add((device.address, device.port))
        devices.append(device)
    taken_names = set(Device.objects.filter(name__in=names).values_list("name", flat=True))
    taken = set(Device.objects.filter(address__in={a for a, _ in endpoints}).values_list("address", "port"))
    for device in devices:
        if device.name in taken_names:
            errors.append(f"name: a device named {device.name} is already registered.")
        if (device.address, device.port) in taken:
            errors.append(f"address: {device.address}:{device.port} is already registered.")
    if errors:
        raise ImportRejected(errors)
    Device.objects.bulk_create(devices, batch_size=1000)
    site_ids = {d.site_id for d in devices}
    for site_id in site_ids:
        SiteFleet.objects.get_or_create(site_id=site_id)
    sync_inventory(site_ids=site_ids)
    return len(devices)


@transaction.atomic
def sync_inventory(*, site_ids: Iterable[int]) -> int:
    """Make the inventory of these sites follow their registered devices; returns the lines written.

    Where a site has devices of a hardware model: installed = devices registered, available = those the plan may
    count on (not faulted, offline or disabled); running is capped at available. Sites without devices keep the
    inventory staff maintain by hand. One GROUP BY, one upsert.
    """
    counts = list(Device.objects.filter(site_id__in=list(site_ids)).inventory_counts())
    # units_running may not exceed the new availability (a CHECK constraint): lower it first.
    for row in counts:
        SiteInventory.objects.filter(
            site_id=row["site_id"], hardware_model_id=row["hardware_model_id"], units_running__gt=row["available"]
        ).update(units_running=row["available"])
    lines = [
        SiteInventory(
            site_id=row["site_id"],
            hardware_model_id=row["hardware_model_id"],
            units_installed=row["installed"],
            units_available=row["available"],
            units_running=0,
        )
        for row in counts
    ]
    SiteInventory.objects.bulk_create(
        lines,
        update_conflicts=True,
        unique_fields=("site", "hardware_model"),
        update_fields=("units_installed", "units_available"),
    )
    return len(lines)


@transaction.atomic
def save_device_states(devices: list[Device]) -> int:
    """Store what a round or a poll observed of these devices (STATE_FIELDS) in a few statements: an upsert on
    the primary key (bulk_update's CASE WHEN per row costs the square of its batch, seconds at 10,000 devices).
    The rows are locked first, and a device deleted meanwhile is not created again. Returns the rows written."""
    locked = Device.objects.select_for_update().filter(pk__in=[d.pk for d in devices])
    present = set(locked.values_list("pk", flat=True))
    rows = [d for d in devices if d.pk in present]
    Device.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=("id",), update_fields=STATE_FIELDS, batch_size=2000
    )
    return len(rows)


@transaction.atomic
def set_kill_switch(*, site: Site, on: bool, reason: str = "") -> SiteFleet:
    """Throw or release a site's kill switch; a dispatch round carries it out after commit (stops every device)."""
    from ..tasks import dispatch_fleet

    fleet, _ = SiteFleet.objects.select_for_update().get_or_create(site=site)
    fleet.kill_switch = on
    fleet.kill_switch_reason = reason[:200] if on else ""
    fleet.save(update_fields=["kill_switch", "kill_switch_reason"])
    dispatch_fleet.delay_on_commit(trigger="kill_switch")
    return fleet


@transaction.atomic
def set_device_status(*, device_ids: Iterable[int], status: str, reason: str = "") -> int:
    """Staff clearing a fault (back to unknown: the next poll says online) or disabling devices; inventory follows."""
    if status not in (DeviceStatus.UNKNOWN, DeviceStatus.DISABLED):
        raise ValueError("Staff may only clear devices (unknown) or disable them.")
    devices = Device.objects.filter(pk__in=list(device_ids))
    site_ids = set(devices.values_list("site_id", flat=True))
    changed = devices.exclude(status=status).update(status=status, status_reason=reason[:200])
    sync_inventory(site_ids=site_ids)
    return changed

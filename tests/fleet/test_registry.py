"""The device registry: CSV import (all or nothing, line messages), inventory following the devices, credentials
by reference only, the admin (changelist, import, kill switch, clearing faults) and the staff-only API."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from fleet import credentials
from fleet.choices import DeviceStatus
from fleet.models import Device, SiteFleet
from fleet.services import import_devices_csv, register_device, set_device_status
from fleet.services.registry import ImportRejected
from sites.models import SiteInventory
from tests.factories import SiteFactory

HEADER = "name,site,hardware_model,driver,address,port,firmware_model,credentials_ref\n"


@pytest.fixture
def site(hardware):
    return SiteFactory(code="east")


def test_csv_import_registers_devices_and_the_inventory_follows(site):
    text = HEADER + "".join(f"m{i},east,miner_air,luxos,10.0.0.{i},,Antminer S21,\n" for i in range(1, 6))
    text += "g1,east,inference_gpu,node_agent,10.0.1.1,9100,,NODE_TOKEN\n"
    assert import_devices_csv(text=text) == 6
    air = SiteInventory.objects.get(site=site, hardware_model__code="miner_air")
    assert (air.units_installed, air.units_available, air.units_running) == (5, 5, 0)
    assert Device.objects.get(name="m1").port == 4028  # the driver's default
    assert SiteFleet.objects.filter(site=site).exists()


def test_a_bad_csv_stores_nothing_and_names_every_bad_line(site):
    text = HEADER + (
        "m1,east,miner_air,luxos,10.0.0.1,,,\n"
        "m2,nowhere,miner_air,luxos,10.0.0.2,,,\n"  # unknown site
        "m3,east,inference_gpu,luxos,10.0.0.3,,,\n"  # a miner driver for an inference node
        "m4,east,miner_air,luxos,not-an-ip,,,\n"
        "m1,east,miner_air,luxos,10.0.0.1,,,\n"  # repeated name and endpoint
        "m6,east,miner_air,luxos,10.0.0.6,,,hunter2 plain secret\n"  # a secret, not a reference
    )
    with pytest.raises(ImportRejected) as raised:
        import_devices_csv(text=text)
    errors = "\n".join(raised.value.errors)
    for fragment in ("line 3: site", "line 4: driver", "line 5: address", "line 6: name", "line 7: credentials_ref"):
        assert fragment in errors
    assert not Device.objects.exists() and not SiteInventory.objects.exists()


def test_a_device_already_registered_is_refused(site):
    register_device(name="m1", site="east", hardware_model="miner_air", driver="luxos", address="10.0.0.1")
    with pytest.raises(ImportRejected, match="already registered"):
        import_devices_csv(text=HEADER + "m2,east,miner_air,luxos,10.0.0.1,4028,,\n")
    with pytest.raises(ValidationError):
        register_device(name="m1", site="east", hardware_model="miner_air", driver="luxos", address="10.0.0.9")


def test_faulted_and_disabled_devices_leave_the_available_inventory(site):
    for i in range(3):
        register_device(
            name=f"m{i}", site="east", hardware_model="miner_air", driver="luxos", address=f"10.0.0.{i + 1}"
        )
    SiteInventory.objects.filter(site=site).update(units_running=3)
    Device.objects.filter(name="m0").update(status=DeviceStatus.FAULTED)
    set_device_status(device_ids=[Device.objects.get(name="m1").pk], status=DeviceStatus.DISABLED)
    line = SiteInventory.objects.get(site=site)
    assert (line.units_installed, line.units_available, line.units_running) == (3, 1, 1)
    set_device_status(device_ids=Device.objects.values_list("pk", flat=True), status=DeviceStatus.UNKNOWN)
    assert SiteInventory.objects.get(site=site).units_available == 3


def test_credentials_resolve_from_the_environment_then_the_secrets_file(settings, tmp_path, monkeypatch):
    secrets = tmp_path / "secrets"
    secrets.write_text("# fleet\nMINER_PW=from-file\nNODE_TOKEN=file-token\n")
    settings.FLEET = {**settings.FLEET, "SECRETS_FILE": str(secrets)}
    monkeypatch.setenv("NODE_TOKEN", "env-token")
    assert credentials.resolve("MINER_PW") == "from-file"
    assert credentials.resolve("NODE_TOKEN") == "env-token"
    assert credentials.resolve("") is None
    with pytest.raises(credentials.MissingCredentials):
        credentials.resolve("NOT_THERE")


def test_admin_changelist_import_and_kill_switch(admin_client, site, django_capture_on_commit_callbacks):
    register_device(name="m1", site="east", hardware_model="miner_air", driver="luxos", address="10.0.0.1")
    assert admin_client.get(reverse("admin:fleet_device_changelist"), {"q": "m1"}).status_code == 200
    url = reverse("admin:fleet_device_import_csv")
    bad = SimpleUploadedFile("d.csv", (HEADER + "x,nowhere,miner_air,luxos,10.0.0.2,,,\n").encode())
    response = admin_client.post(url, {"file": bad})
    assert response.status_code == 400 and b"line 2: site" in response.content
    good = SimpleUploadedFile("d.csv", (HEADER + "m2,east,miner_air,luxos,10.0.0.2,,,\n").encode())
    assert admin_client.post(url, {"file": good}).status_code == 302
    assert Device.objects.count() == 2
    fleet = SiteFleet.objects.get(site=site)
    changelist = reverse("admin:fleet_sitefleet_changelist")
    with django_capture_on_commit_callbacks() as callbacks:
        admin_client.post(changelist, {"action": "throw_kill_switch", "_selected_action": [fleet.pk]})
    fleet.refresh_from_db()
    assert fleet.kill_switch and "thrown by" in fleet.kill_switch_reason
    assert len(callbacks) == 1  # the dispatch round that stops the site is queued after commit
    device = Device.objects.get(name="m1")
    Device.objects.filter(pk=device.pk).update(status=DeviceStatus.FAULTED)
    admin_client.post(
        reverse("admin:fleet_device_changelist"), {"action": "clear_faults", "_selected_action": [device.pk]}
    )
    device.refresh_from_db()
    assert device.status == DeviceStatus.UNKNOWN


def test_api_is_for_staff_and_shows_the_reference_never_a_secret(staff_api, customer_api, site, monkeypatch):
    monkeypatch.setenv("NODE_TOKEN", "s3cret")
    register_device(
        name="g1", site="east", hardware_model="inference_gpu", driver="node_agent", address="10.0.1.1",
        credentials_ref="NODE_TOKEN",
    )  # fmt: skip
    assert customer_api.get("/api/fleet/devices/").status_code == 403
    response = staff_api.get("/api/fleet/devices/", {"site": "east"})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1 and body["results"][0]["credentials_ref"] == "NODE_TOKEN"
    assert "s3cret" not in response.content.decode()
    for path in ("/api/fleet/dispatch-rounds/", "/api/fleet/commands/", "/api/fleet/telemetry-rollups/"):
        assert staff_api.get(path).status_code == 200

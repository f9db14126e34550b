"""Default beat schedules install idempotently and name only registered tasks."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from core.schedules import DEFAULT_SCHEDULES, install_default_schedules
from energyarb.celery import app

pytestmark = pytest.mark.django_db


def test_every_scheduled_name_is_a_registered_task():
    app.loader.import_default_modules()
    missing = [entry.task for entry in DEFAULT_SCHEDULES if entry.task not in app.tasks]
    assert missing == []


def test_expires_is_shorter_than_the_period():
    assert all(entry.expires_seconds < entry.every_seconds for entry in DEFAULT_SCHEDULES)


def test_install_is_idempotent_and_keeps_staff_edits():
    assert set(install_default_schedules().values()) == {"created"}
    PeriodicTask.objects.filter(name="refresh weather").update(enabled=False)
    assert set(install_default_schedules().values()) == {"kept"}
    assert PeriodicTask.objects.filter(name__in=[e.name for e in DEFAULT_SCHEDULES]).count() == len(DEFAULT_SCHEDULES)
    assert PeriodicTask.objects.get(name="refresh weather").enabled is False
    call_command("install_schedules", "--reset", stdout=None)
    assert PeriodicTask.objects.get(name="refresh weather").enabled is True

"""Production settings and the defences they switch on: `check --deploy` is clean, secrets come only from the
environment, security headers and secure cookies are sent, CSRF guards every form and dashboard action, the API
and the sign-in forms are rate limited, and money and power leave the API as decimal strings, never floats."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from core.middleware import JSON_CONTENT_SECURITY_POLICY
from tests.factories import (
    AllocationFactory,
    ContractFactory,
    EnergyPriceFactory,
    MarketPriceFactory,
    OptimizationRunFactory,
    SiteInventoryFactory,
    TierFactory,
    UserFactory,
)

BASE_DIR = Path(settings.BASE_DIR)
PASSWORD = "correct horse battery staple"


def production_environment(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "SECRET_KEY"}}
    env.update(
        DJANGO_SETTINGS_MODULE="energyarb.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="energyarb.example.com",
        CSRF_TRUSTED_ORIGINS="https://energyarb.example.com",
        SECURE_SSL_REDIRECT="1",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        SECURE_HSTS_PRELOAD="1",
        BEHIND_TLS_PROXY="1",
        REDIS_URL="redis://127.0.0.1:6379/0",  # production caches in Redis (only configured here, not contacted)
        DATABASE_URL="postgres://energyarb@127.0.0.1:5432/energyarb",
        ENERGYARB_VAR_DIR=str(BASE_DIR / "var"),
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_production_environment():
    completed = manage(production_environment(), "check", "--deploy", "--fail-level", "WARNING")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "System check identified no issues" in completed.stdout


def test_without_a_secret_key_production_refuses_to_start():
    env = production_environment()
    del env["SECRET_KEY"]
    completed = manage(env, "check")
    assert completed.returncode != 0
    assert "Set SECRET_KEY" in completed.stderr


def test_no_secret_is_written_in_the_settings():
    source = (BASE_DIR / "energyarb" / "settings.py").read_text()
    assert not re.search(r"(?i)(api_key|password|secret)\w*\s*=\s*['\"][^'\"]{8,}['\"]", source)


# Headers and cookies (production values, in process) -------------------------------------------------------


@pytest.fixture
def production(settings):
    settings.DEBUG = False
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    return settings


@pytest.mark.django_db
def test_security_headers_are_sent(production):
    client = Client()
    assert client.get("/login/").status_code == 301  # plain HTTP goes to HTTPS
    response = client.get("/login/", secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    api = Client().get("/api/health", secure=True)
    assert api["X-Content-Type-Options"] == "nosniff" and "Strict-Transport-Security" in api


def _policy(response) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";") if part.strip())


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/api/docs/", "/api/health", "/mara/prices"])
def test_every_response_carries_a_content_security_policy_and_a_permissions_policy(production, path):
    response = Client().get(path, secure=True)

    csp = _policy(response)
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] in ("'self'", "'none'")
    assert csp.get("script-src", csp["default-src"]) in ("'self'", "'none'")  # no inline script, no other origin
    policy = response["Permissions-Policy"]
    assert "camera=()" in policy and "geolocation=()" in policy and "microphone=()" in policy


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/api/docs/"])
def test_pages_carry_the_full_content_security_policy_of_the_settings(production, path):
    response = Client().get(path, secure=True)

    assert response["Content-Type"].startswith("text/html")
    expected = {name: " ".join(sources) for name, sources in settings.CONTENT_SECURITY_POLICY["DIRECTIVES"].items()}
    assert _policy(response) == expected


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/health", "/mara/prices", "/api/no-such-route/"])
def test_json_answers_of_the_api_carry_one_fixed_strict_policy(production, path):
    response = Client().get(path, secure=True)

    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Security-Policy"] == JSON_CONTENT_SECURITY_POLICY
    assert _policy(response) == {
        "default-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }


def test_a_session_lasts_a_working_day_not_two_weeks():
    assert settings.SESSION_COOKIE_AGE == 8 * 3600


@pytest.mark.django_db
def test_session_and_csrf_cookies_are_secure_and_the_session_cookie_is_http_only(production):
    UserFactory(username="ops", is_staff=True, password=PASSWORD)
    client = Client(enforce_csrf_checks=True)
    client.get("/admin/login/", secure=True)
    csrf = client.cookies[settings.CSRF_COOKIE_NAME]
    response = client.post(
        "/admin/login/",
        {"username": "ops", "password": PASSWORD, "csrfmiddlewaretoken": csrf.value},
        secure=True,
        HTTP_REFERER="https://testserver/admin/login/",
    )
    assert response.status_code == 302
    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"
    assert client.cookies[settings.CSRF_COOKIE_NAME]["secure"]


# CSRF on every form and dashboard action ---------------------------------------------------------------------


def test_every_template_form_that_posts_carries_a_csrf_token():
    for template in (BASE_DIR / "templates").rglob("*.html"):
        text = template.read_text()
        for form in re.finditer(r"<form\b[^>]*>(.*?)</form>", text, flags=re.S | re.I):
            if re.search(r"method=\"post\"", form.group(0), flags=re.I):
                assert "{% csrf_token %}" in form.group(1), f"{template.name}: a POST form without csrf_token"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/optimize", None),  # the dashboard's "AI Optimize" button
        ("/api/initialize", None),  # its "Initialize" button
        ("/api/sla/quotes/", {"tier": "standard", "capacity_kw": "10", "duration_hours": "1"}),
        ("/logout/", {}),
        ("/admin/logout/", {}),
    ],
)
def test_session_posts_without_a_csrf_token_are_refused(path, body, staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    kwargs = {"content_type": "application/json"} if path.startswith("/api/") else {}
    response = client.post(path, body, **kwargs)
    assert response.status_code == 403, response.content[:200]


@pytest.mark.django_db
def test_the_dashboard_action_succeeds_with_its_csrf_token(staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    client.get("/")  # the page hands its token to the script (config.csrf_token) and sets the cookie
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    assert client.post("/api/optimize", HTTP_X_CSRFTOKEN=token).status_code == 202


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/login/", "/login/"])
def test_sign_in_forms_without_a_csrf_token_are_refused(path):
    UserFactory(username="ops", is_staff=True, password=PASSWORD)
    client = Client(enforce_csrf_checks=True)
    assert client.post(path, {"username": "ops", "password": PASSWORD}).status_code == 403


@pytest.mark.django_db
def test_admin_actions_need_a_csrf_token(staff_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    response = client.post("/admin/sites/site/", {"action": "delete_selected", "_selected_action": []})
    assert response.status_code == 403


# Rate limits -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_is_rate_limited_for_anonymous_and_signed_in_clients(monkeypatch, anon_api, customer_api):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"anon": "3/min"})
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "4/min"})
    assert [anon_api.get("/mara/prices").status_code for _ in range(4)] == [200, 200, 200, 429]
    statuses = [customer_api.get("/api/tiers/").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    assert "Retry-After" in customer_api.get("/api/tiers/")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/login/", "/login/"])
def test_sign_in_is_locked_after_repeated_failures_then_unlocked_after_the_window(path, settings):
    settings.LOGIN_FAILURE_LIMIT = 5
    UserFactory(username="ops", is_staff=True, password=PASSWORD)
    attacker, colleague = Client(REMOTE_ADDR="203.0.113.9"), Client(REMOTE_ADDR="198.51.100.7")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for _ in range(5):
            assert attacker.post(path, {"username": "ops", "password": "guess"}).status_code == 200  # form error
        refused = attacker.post(path, {"username": "ops", "password": PASSWORD})
        assert refused.status_code == 200 and not refused.wsgi_request.user.is_authenticated  # the right password
        assert colleague.post(path, {"username": "ops", "password": PASSWORD}).status_code == 302  # elsewhere: fine
    with time_machine.travel(start + timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_S + 1), tick=False):
        assert attacker.post(path, {"username": "ops", "password": PASSWORD}).status_code == 302


@pytest.mark.django_db
def test_one_address_spraying_usernames_is_locked_too(settings):
    settings.LOGIN_FAILURE_IP_LIMIT = 8
    UserFactory(username="ops", is_staff=True, password=PASSWORD)
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for n in range(8):
        attacker.post("/admin/login/", {"username": f"user{n}", "password": "guess"})
    assert attacker.post("/admin/login/", {"username": "ops", "password": PASSWORD}).status_code == 200


@pytest.mark.django_db
def test_behind_the_proxy_each_client_is_counted_by_the_address_the_proxy_saw(settings):
    """All requests arrive from the proxy's address; its X-Forwarded-For entry tells clients apart, and a forged
    entry in front of it changes nothing."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    settings.LOGIN_FAILURE_LIMIT = 3
    UserFactory(username="ops", is_staff=True, password=PASSWORD)
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    attacker = Client(**proxy, HTTP_X_FORWARDED_FOR="203.0.113.9")
    for n in range(3):
        forged = Client(**proxy, HTTP_X_FORWARDED_FOR=f"198.18.0.{n}, 203.0.113.9")
        forged.post("/admin/login/", {"username": "ops", "password": "guess"})
    assert attacker.post("/admin/login/", {"username": "ops", "password": PASSWORD}).status_code == 200  # locked
    colleague = Client(**proxy, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert colleague.post("/admin/login/", {"username": "ops", "password": PASSWORD}).status_code == 302


# Money and energy: Decimal end to end -----------------------------------------------------------------------

DECIMAL_KEY = re.compile(r"(_usd|usd_|_kw|kw_|_mwh|_kwh|multiplier)")


def _numbers_that_are_not_strings(payload, path="") -> list[str]:
    found = []
    if isinstance(payload, dict):
        for key, value in payload.items():
            where = f"{path}.{key}"
            if DECIMAL_KEY.search(key) and isinstance(value, int | float) and not isinstance(value, bool):
                found.append(f"{where}={value!r}")
            found += _numbers_that_are_not_strings(value, where)
    elif isinstance(payload, list):
        for index, value in enumerate(payload):
            found += _numbers_that_are_not_strings(value, f"{path}[{index}]")
    return found


@pytest.mark.django_db
def test_money_and_power_leave_the_api_as_exact_decimal_strings(staff_api, customer_api, customer):
    inventory = SiteInventoryFactory()
    site = inventory.site
    EnergyPriceFactory(site=site, interval_start=timezone.now(), price_usd_per_mwh=Decimal("45.10"))
    MarketPriceFactory(interval_start=timezone.now(), hashprice_usd_per_ph_day=Decimal("50.1234"))
    contract = ContractFactory(customer=customer, tier=TierFactory(), quoted_total_usd=Decimal("1440.10"))
    run = OptimizationRunFactory(revenue_usd_per_h=Decimal("1000.10"), energy_cost_usd_per_h=Decimal("400.20"))
    AllocationFactory(run=run, site=site, hardware_model=inventory.hardware_model, it_power_kw=Decimal("35.001"))

    bodies = {
        path: client.get(path).json()
        for client, paths in (
            (staff_api, ["/api/sites/", f"/api/sites/{site.code}/", "/api/hardware-models/", "/api/energy-prices/",
                         "/api/market-prices/", "/api/latest-prices/", "/api/tiers/", "/api/optimizer/runs/",
                         f"/api/optimizer/runs/{run.pk}/"]),
            (customer_api, ["/api/contracts/", f"/api/contracts/{contract.pk}/", "/api/sla/quotes/"]),
        )
        for path in paths
    }  # fmt: skip
    floats = {path: found for path, body in bodies.items() if (found := _numbers_that_are_not_strings(body))}
    assert floats == {}
    # Exact round trips: what was stored is what is served, to the last decimal.
    assert bodies["/api/energy-prices/"]["results"][0]["price_usd_per_mwh"] == "45.10"
    assert bodies["/api/market-prices/"]["results"][0]["hashprice_usd_per_ph_day"] == "50.1234"
    assert bodies[f"/api/contracts/{contract.pk}/"]["quoted_total_usd"] == "1440.10"
    run_body = bodies[f"/api/optimizer/runs/{run.pk}/"]
    assert run_body["revenue_usd_per_h"] == "1000.10"
    assert run_body["allocations"][0]["it_power_kw"] == "35.001"
    assert Decimal(run_body["profit_usd_per_h"]) == Decimal("1000.10") - Decimal("400.20")


# The documented deployment matches the code -----------------------------------------------------------------


def test_the_procfile_runs_one_beat_and_a_worker_for_every_queue_tasks_are_sent_to():
    from core.schedules import DEFAULT_SCHEDULES

    processes = dict(
        line.split(":", 1) for line in (BASE_DIR / "deploy" / "Procfile").read_text().splitlines() if line[:1].isalpha()
    )
    assert [name for name, command in processes.items() if " beat" in command] == ["beat"]
    consumed = {
        q for command in processes.values() for q in re.findall(r"worker -Q (\S+)", " " + command) for q in q.split(",")
    }
    sent = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    sent |= {entry.queue for entry in DEFAULT_SCHEDULES} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    assert sent <= consumed
    assert "gunicorn energyarb.wsgi:application" in processes["web"]
    units = {path.name for path in (BASE_DIR / "deploy" / "systemd").glob("*.service")}
    assert units == {"energyarb-web.service", "energyarb-worker@.service", "energyarb-beat.service"}

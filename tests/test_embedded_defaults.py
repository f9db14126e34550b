"""The customer's flow on `make run`'s embedded defaults: SQLite and no Redis, in a process of its own.

CI runs the suite on PostgreSQL, so nothing else would notice a read that only SQLite answers differently (it
hands back floats and naive datetimes where PostgreSQL hands back Decimals and aware ones; found when the quote
endpoint answered 500 on SQLite only). This migrates and seeds a fresh SQLite file under ``tmp_path``, then, as
the demo customer with its token, quotes, buys the quote, lists and cancels through the real URLs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)

FLOW = """
import json
from datetime import timedelta
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

client = APIClient()
client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get(user__username="demo").key)
start = (timezone.now() + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0).isoformat()
request = {"tier": "standard", "capacity_kw": "25.5", "starts_at": start, "duration_hours": "3"}
quote = client.post("/api/sla/quotes/", request, format="json")
contract = client.post("/api/contracts/", {"quote": quote.json()["id"]}, format="json")
listing = client.get("/api/contracts/")
cancel = client.post(f"/api/contracts/{contract.json()['id']}/cancel/", {}, format="json")
premium = client.post("/api/contracts/", {**request, "tier": "premium"}, format="json")
print(json.dumps({
    "statuses": [quote.status_code, contract.status_code, listing.status_code, cancel.status_code,
                 premium.status_code],
    "quote_total": quote.json()["total_usd"],
    "contract": contract.json(),
    "listed": listing.json()["count"],
    "cancelled": cancel.json()["status"],
    "premium_sites": len(premium.json()["placements"]),
}))
"""


def run_manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_demo_customer_quotes_buys_lists_and_cancels_on_sqlite(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="energyarb.settings",
        DEBUG="1",
        ENERGYARB_VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'energyarb.sqlite3'}",
        SEED_CUSTOMER_USERNAME="demo",
        ALLOWED_HOSTS="localhost,127.0.0.1,testserver",  # Django's test client calls itself testserver
    )
    run_manage(env, "migrate", "--noinput", "-v", "0")
    run_manage(env, "seed_sites")

    result = json.loads(run_manage(env, "shell", "-c", FLOW).strip().splitlines()[-1])

    assert result["statuses"] == [201, 201, 200, 200, 201]
    assert result["contract"]["capacity_kw"] == "25.500"
    assert result["contract"]["quoted_total_usd"] == result["quote_total"]
    assert result["contract"]["placements"][0]["valid_from"].endswith("Z")
    assert result["listed"] == 1 and result["cancelled"] == "cancelled"
    assert result["premium_sites"] >= 2  # N-1

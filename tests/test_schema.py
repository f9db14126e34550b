"""The OpenAPI schema is valid, warning-free, and served with interactive docs."""

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

ROUTES = (
    "/api/sites/",
    "/api/sites/{code}/",
    "/api/hardware-models/",
    "/api/hardware-models/{code}/",
    "/api/energy-prices/",
    "/api/market-prices/",
    "/api/weather-readings/",
    "/api/latest-prices/",
    "/api/tiers/",
    "/api/tiers/{code}/",
    "/api/optimizer/runs/",
    "/api/optimizer/runs/{id}/",
)


def test_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    paths = yaml.safe_load(target.read_text())["paths"]
    assert set(ROUTES) <= set(paths)


def test_latest_prices_schema_describes_one_object_not_a_page(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(target))

    response = yaml.safe_load(target.read_text())["paths"]["/api/latest-prices/"]["get"]["responses"]["200"]

    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/LatestPrices"}


@pytest.mark.parametrize("url_name", ["schema", "api-docs"])
def test_schema_and_docs_answer_a_logged_in_user(customer, url_name):
    client = APIClient()
    client.force_login(customer.user)

    assert client.get(reverse(url_name)).status_code == 200

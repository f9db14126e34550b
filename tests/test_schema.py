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


@pytest.mark.parametrize("url_name", ["schema", "api-docs"])
def test_schema_and_docs_refuse_anonymous_requests_like_the_rest_of_the_api(anon_api, url_name):
    response = anon_api.get(reverse(url_name))

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_the_docs_page_loads_swagger_ui_from_our_static_files_only(customer):
    """It loaded swagger-ui-dist@latest from a CDN; drf-spectacular-sidecar ships the same files as static files."""
    from django.contrib.staticfiles import finders
    from django.templatetags.static import static

    client = APIClient()
    client.force_login(customer.user)
    html = client.get(reverse("api-docs")).content.decode()

    assert "cdn" not in html.lower() and "https://" not in html and "http://" not in html
    assert "<script>" not in html  # the start-up script is a separate URL (?script), so CSP allows it
    bundle = static("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert bundle in html
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    script = client.get(reverse("api-docs") + "?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")

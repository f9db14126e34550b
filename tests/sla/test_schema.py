"""The commerce routes are in the OpenAPI schema with their request bodies and refusals."""

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_commerce_routes_are_documented(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    paths = yaml.safe_load(target.read_text())["paths"]

    assert {"/api/sla/quotes/", "/api/contracts/", "/api/contracts/{id}/", "/api/contracts/{id}/cancel/"} <= set(paths)
    assert {"201", "400", "409"} <= set(paths["/api/contracts/"]["post"]["responses"])  # + framework errors
    assert "/api/sla/request/" in paths
    quote_body = paths["/api/sla/quotes/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert quote_body == {"$ref": "#/components/schemas/CapacityRequestRequest"}

"""collectstatic without node_modules: it must fail with a message naming `npm ci`, not leave a manifest that makes
the dashboard answer 500 (issue #14, item 6)."""

import json

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

MANIFEST_STORAGE = {"BACKEND": "core.storage.VendorCheckedManifestStorage"}
# Only the project's own sources (static/ and the npm folders): the apps' static files are not needed here.
FINDERS = ["django.contrib.staticfiles.finders.FileSystemFinder"]


@pytest.fixture
def manifest_storage(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    settings.STATICFILES_FINDERS = FINDERS
    settings.STORAGES = {**settings.STORAGES, "staticfiles": MANIFEST_STORAGE}
    return settings


def test_collectstatic_without_node_modules_fails_naming_npm_ci(manifest_storage):
    manifest_storage.STATICFILES_DIRS = [django_settings.BASE_DIR / "static"]  # what settings build without npm

    with pytest.raises(CommandError) as refused:
        call_command("collectstatic", "--noinput", verbosity=0)

    message = str(refused.value)
    assert "npm ci" in message
    assert "vendor/chart.js/chart.umd.min.js" in message
    assert "vendor/topojson-client/topojson-client.min.js" in message
    # No manifest was written that would make the dashboard answer 500.
    assert not (manifest_storage.STATIC_ROOT / "staticfiles.json").exists()


def test_collectstatic_with_the_npm_files_writes_each_into_the_manifest(manifest_storage, tmp_path):
    # The npm files the pages load, each linked from node_modules under its vendor/ name (not the whole packages:
    # compressing them all takes half a minute).
    sources = tmp_path / "sources"
    for name in django_settings.VENDOR_STATIC_FILES:
        prefix, source = next((p, s) for p, s in django_settings._STATIC_SOURCES if p and name.startswith(p + "/"))
        real = source / name.removeprefix(prefix + "/")
        assert real.is_file(), f"{real} is missing: run `make npm`"
        (sources / name).parent.mkdir(parents=True, exist_ok=True)
        (sources / name).symlink_to(real)
        source_map = real.with_name(real.name + ".map")  # the manifest storage follows sourceMappingURL
        if source_map.is_file():
            (sources / (name + ".map")).symlink_to(source_map)
    manifest_storage.STATICFILES_DIRS = [sources]

    call_command("collectstatic", "--noinput", verbosity=0)

    manifest = json.loads((manifest_storage.STATIC_ROOT / "staticfiles.json").read_text())
    assert set(django_settings.VENDOR_STATIC_FILES) <= set(manifest["paths"])

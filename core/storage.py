"""Static files storage: WhiteNoise's compressed manifest, refusing a manifest without the dashboard's npm files."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from whitenoise.storage import CompressedManifestStaticFilesStorage


class VendorCheckedManifestStorage(CompressedManifestStaticFilesStorage):
    """`collectstatic` fails, before it writes the manifest, when a file of `VENDOR_STATIC_FILES` was not collected.

    The browser libraries come from node_modules (`npm ci`). Without them the manifest would lack their entries and
    every page that names them (the dashboard) would answer 500 at run time; failing here says why, at build time.
    """

    def post_process(self, paths: dict[str, Any], *args: Any, **kwargs: Any) -> Iterator[tuple[str, str, Any]]:
        missing = [name for name in settings.VENDOR_STATIC_FILES if name not in paths]
        if missing:
            raise CommandError(
                f"Static files of the dashboard were not found: {', '.join(missing)}. They come from npm: run "
                f"`npm ci` (or `make npm`) in {settings.BASE_DIR} so that {settings.NODE_MODULES_DIR} exists, "
                "then collectstatic again."
            )
        yield from super().post_process(paths, *args, **kwargs)

"""A Celery worker whose chosen function pauses on its first call, so a test can SIGKILL it mid-way.

    FAULT_PAUSE_AT=sites.services:store_market_prices FAULT_MARKER=/tmp/x python -m tests.reliability.fault_worker \
        -A energyarb worker ...

The first call of the target (optionally only one whose arguments include FAULT_PAUSE_IF_ARG) writes the pid
of the process running it to FAULT_MARKER and sleeps: the test waits for the marker and kills that process, in
the middle of the target's transaction. Later calls (the marker exists) run normally. Prefork children inherit
the patch (they fork after it). Test code only: production workers start with `celery -A energyarb worker`.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
from pathlib import Path

PAUSE_S = 120.0


def install(target: str, marker: Path, only_with_arg: str = "") -> None:
    module_name, attribute = target.split(":")
    module = importlib.import_module(module_name)
    original = getattr(module, attribute)

    @functools.wraps(original)
    def paused(*args, **kwargs):
        wanted = not only_with_arg or only_with_arg in [str(value) for value in (*args, *kwargs.values())]
        if wanted and not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(PAUSE_S)  # killed here
        return original(*args, **kwargs)

    setattr(module, attribute, paused)


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energyarb.settings")
    django.setup()
    if os.environ.get("FAULT_PAUSE_AT"):
        install(
            os.environ["FAULT_PAUSE_AT"], Path(os.environ["FAULT_MARKER"]), os.environ.get("FAULT_PAUSE_IF_ARG", "")
        )
    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", *sys.argv[1:]]
    celery_main()


if __name__ == "__main__":
    main()

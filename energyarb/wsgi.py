"""WSGI entry point (gunicorn energyarb.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "energyarb.settings")
application = get_wsgi_application()

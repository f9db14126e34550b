#!/bin/sh
# The image's one entry point: which energyarb process this container runs.
#   web                     gunicorn on 0.0.0.0:$PORT (deploy/gunicorn.conf.py: $WEB_CONCURRENCY sync workers, default 3)
#   worker QUEUE            a Celery worker for one queue (data, optimizer, default); $WORKER_CONCURRENCY, default 1
#   beat                    Celery beat (schedules in the database): exactly one per deployment
#   release                 migrate, then install the default schedules (idempotent; run before web and workers)
#   manage COMMAND [ARGS]   any management command (seed_sites, refresh_data, optimize, createsuperuser, ...)
#   healthcheck             the health of the process running as PID 1 (the image's HEALTHCHECK)
# Anything else runs as given (a shell, python -c ...).
set -eu
cd /app
role="${1:-web}"
[ $# -gt 0 ] && shift
case "$role" in
  web)
    exec gunicorn energyarb.wsgi:application --config deploy/gunicorn.conf.py --bind "0.0.0.0:${PORT:-8000}" "$@" ;;
  worker)
    queue="${1:?usage: worker QUEUE (data, optimizer or default)}"
    shift
    exec celery -A energyarb worker --queues "$queue" --hostname "$queue@%h" \
      --concurrency "${WORKER_CONCURRENCY:-1}" --loglevel "${LOG_LEVEL:-INFO}" "$@" ;;
  beat)
    exec celery -A energyarb beat --loglevel "${LOG_LEVEL:-INFO}" "$@" ;;
  release)
    python manage.py migrate --noinput
    exec python manage.py install_schedules ;;
  manage)
    exec python manage.py "$@" ;;
  healthcheck)
    exec python /usr/local/lib/energyarb/healthcheck.py "$@" ;;
  *)
    exec "$role" "$@" ;;
esac

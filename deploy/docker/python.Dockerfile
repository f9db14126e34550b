# Python 3.11 from Debian bookworm (its python3) with venv, on the debootstrapped Debian: the local stand-in for
# the official python:3.11-slim where no image registry answers (deploy/docker/base-images.sh builds it).
ARG DEBIAN_IMAGE=energyarb-local/debian:bookworm
# checkov:skip=CKV_DOCKER_7: the local Debian base is built by base-images.sh under this one fixed tag
# checkov:skip=CKV_DOCKER_2: a base image for builds; the app image has the HEALTHCHECK
# checkov:skip=CKV_DOCKER_3: a base image: the app image's build stage installs as root, its runtime is non-root
FROM ${DEBIAN_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
CMD ["python3"]

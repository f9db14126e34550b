# Redis 7 from Debian bookworm (redis-server), run as the redis user with its data in /data: the local stand-in
# for the official redis image (the compose file passes the same redis-server arguments to either).
ARG DEBIAN_IMAGE=energyarb-local/debian:bookworm
# checkov:skip=CKV_DOCKER_7: the local Debian base is built by base-images.sh under this one fixed tag
FROM ${DEBIAN_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
# Debian gives the redis user a system id chosen at install: the name is what is fixed.
# hadolint ignore=DL3066
USER redis
WORKDIR /data
VOLUME /data
EXPOSE 6379
HEALTHCHECK --interval=10s --timeout=5s CMD ["redis-cli", "ping"]
CMD ["redis-server", "--protected-mode", "no"]

# PostgreSQL 15 from Debian bookworm (postgresql-15), run as the postgres user: the local stand-in for the
# official postgres:15 image, with the same environment (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, PGDATA).
ARG DEBIAN_IMAGE=energyarb-local/debian:bookworm
# checkov:skip=CKV_DOCKER_7: the local Debian base is built by base-images.sh under this one fixed tag
FROM ${DEBIAN_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && pg_dropcluster 15 main \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# Debian gives the postgres user a system id chosen at install: the name is what is fixed.
# hadolint ignore=DL3066
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s CMD ["pg_isready", "-q"]
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]

#!/usr/bin/env bash
# For CI and a new machine (as root): Docker's engine, docker-compose and debootstrap from Debian's packages when
# they are missing, and dockerd started in the background when no daemon answers. Idempotent.
set -euo pipefail
DOCKER=/usr/bin/docker
LOG=/var/log/energyarb-dockerd.log

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "ensure-docker: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v kubectl >/dev/null || { echo "ensure-docker: kubectl (with kustomize) is missing" >&2; exit 1; }

if ! "$DOCKER" info >/dev/null 2>&1; then
  echo "ensure-docker: starting dockerd (log: $LOG)"
  nohup dockerd >"$LOG" 2>&1 &
  for _ in $(seq 1 60); do
    "$DOCKER" info >/dev/null 2>&1 && break
    sleep 1
  done
  "$DOCKER" info >/dev/null 2>&1 || { tail -20 "$LOG" >&2; echo "ensure-docker: dockerd did not start" >&2; exit 1; }
fi
echo "ensure-docker: $("$DOCKER" version --format 'engine {{.Server.Version}}, client {{.Client.Version}}')"

#!/usr/bin/env bash
# System packages for the container, browser, shared-store, signing and cluster tests, and a running
# Docker engine. Installs only what is missing, only as root (elsewhere it says what to
# install). The Slurm test cluster (slurm-wlm, munge) is started by the tests themselves
# (scripts/slurm-cluster.sh).
set -euo pipefail

packages=(docker.io debootstrap chromium chromium-driver postgresql-15 slurm-wlm munge
          openssh-client)
missing=()
# ssh-keygen -Y signs and verifies verdicts and manifests (testbed/signing.py)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v slurmctld >/dev/null || missing+=(slurm-wlm)
command -v munged >/dev/null || missing+=(munge)
# The shared-store tests start their own PostgreSQL server (initdb + pg_ctl) in a temporary
# directory; Debian keeps the binaries under /usr/lib/postgresql/<version>/bin, off PATH.
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql-15)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "system-deps: missing ${missing[*]}; install them (apt-get install ${packages[*]})" >&2
    echo "system-deps: the docker, browser and Slurm tests will be skipped until then" >&2
    exit 0
  fi
  echo "system-deps: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PostgreSQL refuses to run as root: as root the tests run the server as the 'postgres'
# system user, which the Debian package creates (made here if a hand install did not).
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "system-deps: adding the 'postgres' system user (the store tests' server runs as it)"
  useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
fi

if command -v dockerd >/dev/null && ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "system-deps: starting dockerd (log: /tmp/dockerd.log)"
    nohup dockerd >/tmp/dockerd.log 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "system-deps: dockerd did not start:" >&2; tail -20 /tmp/dockerd.log >&2; exit 1; }
  else
    echo "system-deps: the Docker engine is not running; start it (sudo systemctl start docker)" >&2
  fi
fi

#!/usr/bin/env bash
# Installs Debian's PostgreSQL server if it is missing (the tests start their own cluster
# with scripts/with-postgres.sh; nothing here starts a service).
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
echo "setup-postgres: installing Debian's postgresql"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null

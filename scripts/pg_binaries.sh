#!/usr/bin/env bash
# Installs the PostgreSQL server binaries with apt when none are present (the tests start
# throwaway clusters from them). Needs root or passwordless sudo.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then exit 0; fi
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null

#!/usr/bin/env bash
# Installs, with apt, the Debian packages the tests need that are missing: the PostgreSQL server
# binaries (the tests start throwaway clusters from them), Chromium (the browser tests drive it
# with Playwright; `playwright install` cannot download here) and libfaketime (tests that run
# the suite on a frozen Sunday and holiday). Needs root or passwordless sudo.
set -euo pipefail
missing=()
need() {  # need GLOB PACKAGE: PACKAGE is missing when no file matches GLOB
  compgen -G "$1" >/dev/null || missing+=("$2")
}
need '/usr/lib/postgresql/*/bin/postgres' postgresql
need /usr/bin/chromium chromium
need '/usr/lib/*/faketime/libfaketime.so.1' faketime
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null

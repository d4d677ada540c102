#!/usr/bin/env bash
# Installs Debian's Chromium with apt when it is missing (the browser tests drive it with
# Playwright; `playwright install` cannot download here). Needs root or passwordless sudo.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null

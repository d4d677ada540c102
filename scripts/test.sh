#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine, then runs the tests.
#   bash scripts/test.sh [pytest args]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/system_packages.sh"
TRADEFLOW_EXTRAS=test source "$here/setup.sh"
cd "$root"
exec "$venv/bin/python" -m pytest -q "$@"

#!/usr/bin/env bash
# The test command: sets everything up on a fresh machine, then runs the tests.
#   bash scripts/test.sh [pytest args]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/system_packages.sh"
TRADEFLOW_EXTRAS=test source "$here/setup.sh"
cd "$root"
# two test files at a time (pytest-xdist; a file's tests stay in one worker, which keeps its
# module fixtures: served processes, browsers, clusters): much of a test is waiting on a served
# process, a browser or a database. TRADEFLOW_TEST_WORKERS=0 runs them in this process.
exec "$venv/bin/python" -m pytest -q -n "${TRADEFLOW_TEST_WORKERS:-2}" --dist loadfile "$@"

#!/usr/bin/env bash
# Sourced by run.sh and test.sh: a virtual environment with TradeFlow installed in it.
#   TRADEFLOW_EXTRAS: extras to install (run.sh: none, test.sh: test)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
python=${PYTHON:-python3}
log="$root/.venv-install.log"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
fi
extras=${TRADEFLOW_EXTRAS:-}
spec="$root"; [ -n "$extras" ] && spec="$root[$extras]"
# reinstall only when the project's declared dependencies changed
stamp="$venv/.tradeflow-$(cat "$root/pyproject.toml" | sha1sum | cut -c1-12)-${extras:-none}"
if [ ! -f "$stamp" ]; then
  echo "installing TradeFlow and its dependencies into $venv ..." >&2
  "$venv/bin/pip" install -q -e "$spec" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  touch "$stamp"
fi
export PATH="$venv/bin:$PATH"

#!/usr/bin/env bash
# The main job: TradeFlow's embedded store filled with two days of simulated ES and BTCUSDT
# order flow, then ES streamed live into it (Ctrl-C stops). The DuckDB file serves one process:
# read it afterwards, e.g. `.venv/bin/tradeflow export bars ES --spec 5m --last 10`, or share live
# data between processes through PostgreSQL (TRADEFLOW_STORE=postgresql://...).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/setup.sh"
tradeflow instruments add ES --tick-size 0.25 --exchange CME --asset-class future \
  --point-value 50 --session "America/Chicago 08:30-15:15,17:00-16:00"
tradeflow instruments add BTCUSDT --tick-size 0.1 --exchange BINANCE --asset-class crypto
tradeflow simulate BTCUSDT --days 2 --no-live
tradeflow export bars BTCUSDT --spec 1h --last 5
exec tradeflow simulate ES --days 2 --live "$@"

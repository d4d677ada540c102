#!/usr/bin/env bash
# The main job: TradeFlow's embedded store filled with two days of simulated BTCUSDT and ES
# order flow, then `tradeflow serve` on loopback: the pages, the HTTP and websocket API and the
# live pipeline, with the simulator streaming both symbols into it (Ctrl-C stops). BTCUSDT trades
# around the clock; while ES's session is closed (weekends, the daily break) the server says when
# it opens. Other terminals reach the store through the running server (`.venv/bin/tradeflow
# export bars BTCUSDT --spec 5m --last 10`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/setup.sh"
tradeflow instruments add ES --tick-size 0.25 --exchange CME --asset-class future \
  --point-value 50 --session "America/Chicago 08:30-15:15,17:00-16:00"
tradeflow instruments add BTCUSDT --tick-size 0.1 --exchange BINANCE --asset-class crypto
tradeflow simulate BTCUSDT ES --days 2 --no-live
exec tradeflow serve --simulate BTCUSDT,ES "$@"

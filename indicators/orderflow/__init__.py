"""Order-flow studies over trades, bars and footprint cells (``tradeflow.model`` layouts).

* :mod:`.footprint` -- per-bar delta, delta %, intrabar running-delta extremes, bar POC; CVD and
  CVD candles.
* :mod:`.imbalance` -- diagonal bid/ask imbalances, stacked-imbalance zones, unfinished auctions,
  and :func:`group_ticks` (cells summed into rows of N ticks).
* :mod:`.vwap` -- session VWAP with standard-deviation bands, anchored VWAP, and ``VwapState``
  (the incremental form).
* :mod:`.prints` -- big trades (same-time prints summed), zero prints, naked POCs.
* :mod:`.liquidations` -- liquidations per bar and per bar and price level.
* :mod:`.aggression` -- sweeps (one side clearing several levels fast) and absorption.
* :mod:`.book` -- local order book (Binance diff rules; Sierra Chart market-depth commands and
  their replay into book snapshots) and the depth heatmap grid.
* :mod:`.live` -- ``LiveOrderFlow``: the incremental (live) form of the studies above (not the
  book), following the ``BarUpdate`` of a stream's ``tradeflow.bars.BarAggregator``;
  :mod:`.live_heatmap` -- ``LiveHeatmap``, the heatmap grid of a book following its
  ``DepthUpdate`` s.

Pure functions: frames in, frames out, no I/O; imports numpy, pandas and ``tradeflow.model`` only.
"""
from .aggression import absorption, sweeps
from .book import BookCrossedError, OrderBook, heatmap_grid, to_matrix
from .footprint import (bar_delta, bar_poc, cvd, cvd_candles, footprint_metrics,
                        running_delta_extremes)
from .imbalance import group_ticks, imbalances, stacked_imbalances, unfinished_auctions
from .liquidations import liquidations_by_bar, liquidations_by_level
from .live import LiveOrderFlow, LiveUpdate
from .live_heatmap import LiveHeatmap
from .prints import big_trades, naked_pocs, zero_prints
from .vwap import VwapState, anchored_vwap, session_vwap

__all__ = [
    "bar_delta", "running_delta_extremes", "bar_poc", "footprint_metrics", "cvd", "cvd_candles",
    "group_ticks", "imbalances", "stacked_imbalances", "unfinished_auctions",
    "session_vwap", "anchored_vwap", "VwapState", "big_trades", "zero_prints", "naked_pocs",
    "liquidations_by_bar", "liquidations_by_level", "sweeps", "absorption",
    "OrderBook", "BookCrossedError", "heatmap_grid", "to_matrix", "LiveOrderFlow", "LiveUpdate",
    "LiveHeatmap",
]

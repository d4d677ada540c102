"""What the book views (heatmap, tape, DOM ladder) share: the frames they take and how a live
message is split into the parts each one follows.

The hub's messages (``tradeflow.live.hub.Snapshot`` / ``Update`` of a subscription asked with
``book_levels=N``, ``tape=N`` and the ``heatmap`` study) carry ``book`` (the book's best levels,
whole, when it changed), ``trades`` (the commit's trades) and ``studies["heatmap"]`` (the depth
grid's ``Changes``; a whole frame in a ``Snapshot``). A notebook following a venue directly may
pass ``tradeflow.model.DepthUpdate`` s instead (one, or a message with ``depth``: a list), and a
``BarUpdate`` carries ``trades`` and ``liquidations``. :func:`parts` takes out what is there; a
view applies only the parts it draws.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tradeflow.live.hub import Snapshot
from tradeflow.model import (DEPTH_COLUMNS, LIQUIDATION_COLUMNS, TRADE_COLUMNS, DepthUpdate,
                             empty_frame)

from .axes import price_decimals

__all__ = ["BookParts", "parts", "frame_of", "last_snapshot", "side_colors", "size_text",
           "price_text", "HEADER_PX", "column_headers", "best_of", "newer"]

HEADER_PX = 20  # the column headers' strip above a table-like figure (tape, ladder)


NO_TRADES = empty_frame(TRADE_COLUMNS)  # (made once: an empty frame costs milliseconds)
NO_LIQUIDATIONS = empty_frame(LIQUIDATION_COLUMNS)


@dataclass
class BookParts:
    """The parts of a live message the book views follow (empty or None when it had none).
    ``snapshot``: the message is a whole state (a hub ``Snapshot``), to be shown instead of
    what was, not added to it."""
    trades: pd.DataFrame = field(default_factory=lambda: NO_TRADES)  # shared: not changed
    liquidations: pd.DataFrame = field(default_factory=lambda: NO_LIQUIDATIONS)
    depth: list[DepthUpdate] = field(default_factory=list)
    book: pd.DataFrame | None = None  # best levels (depth layout), bids best first, then asks
    heatmap: object = None  # the heatmap study: Changes (Update) or its whole frame (Snapshot)
    snapshot: bool = False


def parts(update, heatmap: str = "heatmap") -> BookParts:
    """The trades, liquidations, book levels, depth updates and heatmap rows of ``update`` (a
    hub message, a ``BarUpdate`` or a ``DepthUpdate``); missing parts are empty. ``heatmap``:
    the label the heatmap study was asked by."""
    if isinstance(update, DepthUpdate):
        return BookParts(depth=[update])
    out = BookParts(snapshot=isinstance(update, Snapshot))
    trades = getattr(update, "trades", None)
    if trades is not None and len(trades):
        out.trades = frame_of(trades, TRADE_COLUMNS[:4], "trades")
    liqs = getattr(update, "liquidations", None)
    if liqs is not None and len(liqs):
        out.liquidations = frame_of(liqs, LIQUIDATION_COLUMNS, "liquidations")
    depth = getattr(update, "depth", None)
    if isinstance(depth, DepthUpdate):
        out.depth = [depth]
    elif depth is not None:
        out.depth = list(depth)
    book = getattr(update, "book", None)
    if book is not None:
        out.book = frame_of(book, DEPTH_COLUMNS, "book levels")
    out.heatmap = (getattr(update, "studies", None) or {}).get(heatmap)
    return out


def newer(frame: pd.DataFrame, since) -> pd.DataFrame:
    """The rows of ``frame`` after time ``since`` (all when None)."""
    if since is None or not len(frame):
        return frame
    return frame[pd.DatetimeIndex(frame["ts"]) > since]


def best_of(book: pd.DataFrame) -> tuple[int, int]:
    """Best bid and best ask ticks of a levels frame (-1 for an empty side)."""
    side = book["side"].to_numpy()
    tick = book["tick"].to_numpy("int64")
    bid, ask = tick[side == -1], tick[side == 1]
    return (int(bid.max()) if len(bid) else -1, int(ask.min()) if len(ask) else -1)


def frame_of(frame, columns, what: str) -> pd.DataFrame:
    """``frame`` checked to have ``columns`` (one line naming what lacks which), times UTC, in
    time order; None gives an empty frame."""
    if frame is None:
        return empty_frame(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}; "
                         f"expected {', '.join(columns)}")
    out = frame.reset_index(drop=True)
    ts = pd.DatetimeIndex(out["ts"])
    out["ts"] = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    if len(out) > 1 and not out["ts"].is_monotonic_increasing:
        out = out.sort_values("ts", kind="stable", ignore_index=True)
    return out


def last_snapshot(depth: pd.DataFrame) -> pd.DataFrame:
    """The rows of the latest snapshot (the latest ``ts``) of a depth-layout frame."""
    depth = frame_of(depth, DEPTH_COLUMNS, "depth")
    if not len(depth):
        return depth
    return depth[depth["ts"] == depth["ts"].iloc[-1]].reset_index(drop=True)


def side_colors(side, theme) -> np.ndarray:
    """The theme's colour of each aggressor side: buying ``up``, selling ``down``, unknown
    ``neutral``."""
    side = np.asarray(side)
    return np.where(side > 0, theme.up, np.where(side < 0, theme.down, theme.neutral))


def size_text(size) -> list[str]:
    """Sizes as short text: thousands separated, up to six significant digits (0.001, 12.5,
    1,234.5), whole numbers from 100,000 on."""
    return [f"{s:,.0f}" if s >= 1e5 else f"{s:,.6g}" for s in np.asarray(size, float).tolist()]


def price_text(price, tick_size: float) -> list[str]:
    """Prices with the decimals of the tick size and thousands separators."""
    decimals = min(price_decimals(tick_size), 10)
    return [f"{p:,.{decimals}f}" for p in np.asarray(price, float).tolist()]


def column_headers(columns: dict, theme, width: int, border: int = 4) -> str:
    """The HTML of a strip of column headers over a table-like figure ``width`` pixels wide
    whose frame has ``border`` pixels either side: ``columns`` maps a header to ``(x, align)``,
    x in the frame's data units 0..1 of its width, align ``left``, ``center`` or ``right``.
    (Bokeh clips annotations to the frame, so the headers are a strip of their own.)"""
    shift = {"left": "0", "center": "-50%", "right": "-100%"}
    frame = width - 2 * border
    spans = "".join(
        f'<span style="position:absolute;left:{border + x * frame:.0f}px;'
        f'transform:translateX({shift[align]})">{html.escape(text)}</span>'
        for text, (x, align) in columns.items())
    return (f'<div class="book-headers" style="position:relative;height:{HEADER_PX}px;'
            f'width:{width}px;background:{theme.background};color:{theme.muted};'
            f'font:11px sans-serif;line-height:{HEADER_PX}px">{spans}</div>')

"""Schema migrations, shared by the backends.

Each migration is a version number, a description and DDL written with ``{ts}``, ``{f64}``... type
placeholders that each dialect fills in. A store applies, in one transaction, every migration above
the version recorded in ``schema_migrations``. Never edit a released migration: add a new one.
TimescaleDB-specific steps (hypertables, compression, continuous aggregates) live in the PostgreSQL
backend because they depend on the extension being present at run time.
"""
from __future__ import annotations

TYPES = {
    "duckdb": {"ts": "TIMESTAMPTZ", "f64": "DOUBLE", "i64": "BIGINT", "i16": "SMALLINT",
               "text": "VARCHAR"},
    "postgres": {"ts": "TIMESTAMPTZ", "f64": "DOUBLE PRECISION", "i64": "BIGINT",
                 "i16": "SMALLINT", "text": "TEXT"},
}

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "market data tables", [
        """CREATE TABLE instruments (
            symbol {text} PRIMARY KEY,
            exchange {text} NOT NULL DEFAULT '',
            asset_class {text} NOT NULL DEFAULT 'other',
            tick_size {f64} NOT NULL,
            point_value {f64} NOT NULL DEFAULT 1,
            session {text} NOT NULL DEFAULT 'UTC 00:00-24:00'
        )""",
        # trades: unique by (symbol, ts, trade_id); the key is enforced by the write path
        # (anti-join in DuckDB, a unique index in PostgreSQL).
        """CREATE TABLE trades (
            symbol {text} NOT NULL,
            ts {ts} NOT NULL,
            price {f64} NOT NULL,
            size {f64} NOT NULL,
            side {i16} NOT NULL,
            trade_id {i64} NOT NULL
        )""",
        # market_data: base-timeframe (1 minute) bars, the rollup every longer bar reads.
        """CREATE TABLE market_data (
            symbol {text} NOT NULL,
            ts {ts} NOT NULL,
            open {f64} NOT NULL,
            high {f64} NOT NULL,
            low {f64} NOT NULL,
            close {f64} NOT NULL,
            volume {f64} NOT NULL,
            ask_volume {f64} NOT NULL,
            bid_volume {f64} NOT NULL,
            trades {i64} NOT NULL,
            open_interest {f64},
            PRIMARY KEY (symbol, ts)
        )""",
        # footprint: base-timeframe cells, one per minute and price level (tick index).
        """CREATE TABLE footprint (
            symbol {text} NOT NULL,
            ts {ts} NOT NULL,
            tick {i64} NOT NULL,
            volume {f64} NOT NULL,
            ask_volume {f64} NOT NULL,
            bid_volume {f64} NOT NULL,
            trades {i64} NOT NULL
        )""",
        # writes replace a minute's cells whole (delete + insert), so the key only serves reads:
        # PostgreSQL needs its index; DuckDB reads through zone maps and an ART index would slow
        # every import
        ("postgres", "ALTER TABLE footprint ADD PRIMARY KEY (symbol, ts, tick)"),
        """CREATE TABLE depth (
            symbol {text} NOT NULL,
            ts {ts} NOT NULL,
            side {i16} NOT NULL,
            tick {i64} NOT NULL,
            size {f64} NOT NULL
        )""",
        """CREATE TABLE liquidations (
            symbol {text} NOT NULL,
            ts {ts} NOT NULL,
            side {i16} NOT NULL,
            price {f64} NOT NULL,
            size {f64} NOT NULL
        )""",
    ]),
    # DuckDB reads time ranges through its zone maps (min/max per row group); an ART index would
    # only slow bulk inserts. PostgreSQL needs real indexes for range reads and the trade key.
    (2, "indexes for time-range reads", [
        ("postgres", "CREATE UNIQUE INDEX trades_key ON trades (symbol, ts, trade_id)"),
        ("postgres", "CREATE INDEX depth_symbol_ts ON depth (symbol, ts)"),
        ("postgres", "CREATE INDEX liquidations_symbol_ts ON liquidations (symbol, ts)"),
    ]),
    # external_bars: bars received built (Sierra Chart bar POSTs, .scid bar records, DBN ohlcv),
    # at their own timeframe (``seconds``), apart from the bars built from trades. Minutes
    # without trades are rolled up from them into market_data, so bars that earlier versions
    # wrote straight into market_data (minutes without any trade) move here as 1-minute bars.
    (3, "received bars at their own timeframe", [
        """CREATE TABLE external_bars (
            symbol {text} NOT NULL,
            seconds {i64} NOT NULL,
            ts {ts} NOT NULL,
            open {f64} NOT NULL,
            high {f64} NOT NULL,
            low {f64} NOT NULL,
            close {f64} NOT NULL,
            volume {f64} NOT NULL,
            ask_volume {f64} NOT NULL,
            bid_volume {f64} NOT NULL,
            trades {i64} NOT NULL,
            open_interest {f64},
            PRIMARY KEY (symbol, seconds, ts)
        )""",
        """INSERT INTO external_bars
           SELECT symbol, 60, ts, open, high, low, close, volume, ask_volume, bid_volume, trades,
                  open_interest
           FROM market_data m WHERE NOT EXISTS (
               SELECT 1 FROM trades t WHERE t.symbol = m.symbol AND t.ts >= m.ts
               AND t.ts < m.ts + INTERVAL '1 minute')""",
    ]),
    # API keys of the HTTP/websocket API (tradeflow.accounts): only a salted HMAC of each key is
    # kept; a revoked key keeps its row (revoked_at) so its name shows in the listing's history
    (4, "API keys", [
        """CREATE TABLE api_keys (
            key_id {text} PRIMARY KEY,
            name {text} NOT NULL,
            salt {text} NOT NULL,
            digest {text} NOT NULL,
            timezone {text} NOT NULL DEFAULT 'UTC',
            created_at {ts} NOT NULL,
            revoked_at {ts}
        )""",
    ]),
]


def render(dialect: str, statements) -> list[str]:
    """The statements for ``dialect`` (a ``(dialect, sql)`` pair is for that dialect only), with
    the dialect's type names filled in."""
    out = []
    for s in statements:
        if isinstance(s, tuple):
            only, s = s
            if only != dialect:
                continue
        out.append(s.format(**TYPES[dialect]))
    return out


def pending(current: int) -> list[tuple[int, str, list[str]]]:
    """Migrations above ``current``, in order."""
    return [m for m in MIGRATIONS if m[0] > current]


LATEST = MIGRATIONS[-1][0]

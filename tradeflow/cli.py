"""The ``tradeflow`` command line."""
from __future__ import annotations

import asyncio
import os
import sys
import time

import click
import pandas as pd

from data_access import StoreError, open_store

from . import config
from .ingest.errors import printable
from .ingest.files import FORMATS
from .model import ASSET_CLASSES, Instrument, ModelError, Session


MAX_ROWS = 1_000_000_000  # --last: beyond any store's rows, well inside a 64-bit LIMIT


class UserError(click.ClickException):
    """An error whose message is for the user (no traceback)."""


def _fail(exc: Exception):
    # messages quote file names and file content: never let their control bytes reach the
    # terminal (line breaks stay: a formula error puts a caret line under the formula)
    raise UserError("\n".join(printable(line) for line in str(exc).split("\n"))) from exc


class _Group(click.Group):
    """Turns the errors a user can fix into one clear line and exit status 1."""

    def invoke(self, ctx):
        from indicators.registry import IndicatorError

        from .accounts.apikeys import ApiKeyError
        from .ingest.errors import IngestError
        from .plugins import PluginError
        from .server.client import ServerError
        from .studies import StudyError

        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except (ModelError, IngestError, StoreError, IndicatorError, StudyError, PluginError,
                ApiKeyError, ServerError, config.ConfigError, OSError) as exc:
            _fail(exc)


@click.group(cls=_Group)
@click.option("--store", "store", envvar="TRADEFLOW_STORE", default=None,
              help="Store URL: duckdb:///path/file.duckdb (default, in the user data folder) or "
                   "postgresql://user@host:port/db. Also $TRADEFLOW_STORE.")
@click.pass_context
def main(ctx, store):
    """TradeFlow: order-flow and technical-analysis workbench."""
    ctx.obj = {"store_url": config.store_url(store)}


def _open(ctx):
    return open_store(ctx.obj["store_url"])


def _run(ctx, op: str, **args):
    """Run a store operation (``tradeflow.server.control``): here, or, while ``tradeflow serve``
    holds the embedded DuckDB file, inside that server."""
    from .server import client, control, runfile

    server = runfile.find(ctx.obj["store_url"])
    if server is not None:
        click.echo(f"(the server at {server.url} holds the store: the work runs there)", err=True)
        if "progress" in args:  # a progress bar would go to the server's terminal
            args["progress"] = False
        return client.call(server, op, args)
    with _open(ctx) as store:
        return control.OPERATIONS[op](store, **args)


def _not_served(ctx, instead: str) -> None:
    """A UserError when ``tradeflow serve`` holds the store and this command cannot run there."""
    from .server import runfile

    server = runfile.find(ctx.obj["store_url"])
    if server is not None:
        raise UserError(f"the server at {server.url} (process {server.pid}) holds the store: "
                        f"stop it first, or let it do this: {instead}")


def _echo(result) -> None:
    for line in result.lines:
        click.echo(line)


# instruments ---------------------------------------------------------------------------------

@main.group()
def instruments():
    """Register and list instruments (tick size, session, ...)."""


@instruments.command("add")
@click.argument("symbol")
@click.option("--tick-size", type=float, required=True, help="Minimum price increment.")
@click.option("--exchange", default="")
@click.option("--asset-class", type=click.Choice(ASSET_CLASSES), default="other")
@click.option("--point-value", type=float, default=1.0, help="Currency value of one point.")
@click.option("--session", "session", default="UTC 00:00-24:00", show_default=True,
              help="'TZ RTH[,ETH]', e.g. 'America/Chicago 08:30-15:15,17:00-16:00'.")
@click.pass_context
def instruments_add(ctx, symbol, tick_size, exchange, asset_class, point_value, session):
    """Add or replace an instrument."""
    Instrument(symbol, tick_size, exchange, asset_class, point_value, Session.parse(session))
    _echo(_run(ctx, "instruments_add", symbol=symbol, tick_size=tick_size, exchange=exchange,
               asset_class=asset_class, point_value=point_value, session=session))


@instruments.command("list")
@click.pass_context
def instruments_list(ctx):
    """List the stored instruments."""
    _echo(_run(ctx, "instruments_list"))


# import / export -----------------------------------------------------------------------------

@main.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)),
              default=None, help="File format (guessed from the file when not given).")
@click.option("--symbol", default=None, help="Symbol of the data (else from the file).")
@click.option("--map", "mapping", multiple=True, metavar="COLUMN=SOURCE",
              help="CSV/Parquet column mapping, ours=the file's: ts, price, size, side, "
              "buyer_maker, trade_id, symbol; e.g. --map ts=Time --map size=Volume. A 'buyer is "
              "maker' true/false (1/0, yes/no) column gives the side: --map buyer_maker=m "
              "(true: the seller aggressed).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def import_(ctx, paths, fmt, symbol, mapping, quiet):
    """Import trade files (.scid, Binance CSV, Databento DBN, CSV, Parquet) and Sierra Chart
    market-depth files (.depth, stored as 1-second book snapshots). All or nothing."""
    pairs = dict(_key_value(m, "--map") for m in mapping) or None
    # absolute paths: a running server may do the work, from another directory
    _echo(_run(ctx, "import", paths=[os.path.abspath(p) for p in paths], format=fmt,
               symbol=symbol, mapping=pairs, progress=not quiet))


def _key_value(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"{option} {text!r}: expected KEY=VALUE")
    return key.strip(), value.strip()


@main.group("export")
def export():
    """Export stored trades, bars or footprint cells (CSV, Parquet), or a chart (HTML, PNG)."""


def _frame_export(what: str, doc: str):
    """``tradeflow export WHAT SYMBOL``: the stored frame, as CSV or Parquet."""

    def command(ctx, symbol, spec, start, end, last, output, received=False):
        if output is not None:
            _check_output(output)
        frame = _run(ctx, "export", what=what, symbol=symbol, spec=spec, start=start, end=end,
                     last=last, received=received).frame
        write_frame(frame, output)
        if output:
            click.echo(f"wrote {len(frame):,} rows to {output}", err=True)

    command.__doc__ = doc
    options = [click.argument("symbol"), _SPEC, _START, _END,
               click.option("--last", type=click.IntRange(1, MAX_ROWS), default=None,
                            help="Only the last N rows (trades) or bars."),
               click.option("-o", "--output", default=None,
                            help="File to write (.csv or .parquet); CSV to stdout when not given.")]
    if what == "bars":
        options.append(click.option(
            "--received", is_flag=True, help="The bars received built (Sierra Chart, .scid bar "
            "records, DBN ohlcv) at their own timeframe, not those built from trades."))
    for option in reversed(options):
        command = option(command)
    export.command(what)(click.pass_context(command))


_SPEC = click.option("--spec", default="1m", show_default=True,
                     help="Bar spec, e.g. 5m, T500, R8.")
_START = click.option("--start", default=None, help="Start time (UTC unless an offset is given).")
_END = click.option("--end", default=None, help="End time, exclusive.")
_frame_export("trades", "Export stored trades.")
_frame_export("bars", "Export bars of any spec (built from the stored trades or rollups).")
_frame_export("footprint", "Export footprint cells (volume at the bid and ask per price).")


@export.command("chart")
@click.argument("symbol")
@_SPEC
@click.option("--type", "chart_type", default="candles", show_default=True,
              help="footprint, candles, ohlc, line, heikin_ashi, renko, kagi ... (the desk's).")
@click.option("--studies", default="", metavar="STUDIES",
              help='Catalogue studies, e.g. "EMA(timeperiod=20),RSI,cvd" (not on a footprint).')
@_START
@_END
@click.option("--last", type=click.IntRange(1, MAX_ROWS), default=None,
              help="The last N bars (without --start: 120, a footprint 16).")
@click.option("--theme", default="dark", show_default=True, help="dark or light.")
@click.option("--width", type=click.IntRange(200, 8000), default=None,
              help="Pixels (PNG: 1280; HTML: the browser window's when not given).")
@click.option("--height", type=click.IntRange(200, 8000), default=None,
              help="Pixels (PNG: 720; HTML: the browser window's when not given).")
@click.option("--format", "fmt", type=click.Choice(["html", "png"]), default=None,
              help="html or png (else from the file name).")
@click.option("-o", "--output", required=True, help="File to write: chart.html or chart.png.")
@click.pass_context
def export_chart(ctx, symbol, spec, chart_type, studies, start, end, last, theme, width, height,
                 fmt, output):
    """Draw SYMBOL's chart into a file: standalone HTML (scripts inlined: it opens without a
    server or network; zoom and crosshair work) or a PNG (rendered in headless Chromium)."""
    import contextlib

    fmt = _chart_format(output, fmt)
    if fmt == "html" and (width is None) != (height is None):
        raise UserError("--width and --height: give both, or neither (the chart then fills the "
                        "browser's window)")
    # the command line is the outermost shell: this command renders the dashboards' chart
    from tradeflow.browser import BrowserMissing, launch
    from dashboards.export import (PNG_SIZE, ExportError, chart_config, chart_html, png_of,
                                   write_file)

    from .marketdata import MarketData
    from .remote import ServerData
    from .server import runfile

    if fmt == "png":
        size = (width or PNG_SIZE[0], height or PNG_SIZE[1])
    else:
        size = (width, height) if width else None
    try:
        config = chart_config(symbol, spec, chart_type, studies, theme)
        # the browser before the work: a missing one is said at once
        with launch() if fmt == "png" else contextlib.nullcontext() as browser:
            server = runfile.find(ctx.obj["store_url"])
            if server is not None:  # it holds the DuckDB file: read through its read API
                click.echo(f"(the server at {server.url} holds the store: the chart reads "
                           "from it)", err=True)
                document = chart_html(ServerData(server.url), config, start, end, last,
                                      size if fmt == "html" else None)
            else:
                with _open(ctx) as store:
                    document = chart_html(MarketData(store), config, start, end, last,
                                          size if fmt == "html" else None)
            data = png_of(browser, document, size) if fmt == "png" else document.encode()
        try:
            write_file(output, data)
        except OSError as exc:
            raise UserError(f"-o {output}: cannot write a file in "
                            f"{os.path.dirname(os.path.abspath(output))} ({exc.strerror})") \
                from None
    except (ExportError, BrowserMissing) as exc:
        _fail(exc)
    click.echo(f"wrote {output} ({len(data):,} bytes)", err=True)


def _chart_format(output: str, fmt: str | None) -> str:
    """html or png, from --format or the file name; -o's folder must exist and be writable (checked
    before any work)."""
    suffix = os.path.splitext(output)[1].lower().lstrip(".")
    named = {"html": "html", "htm": "html", "png": "png"}.get(suffix)
    if fmt is None and named is None:
        raise UserError(f"-o {output}: use a .html or .png file name, or give --format")
    if fmt is not None and named is not None and fmt != named:
        raise UserError(f"-o {output} is a .{suffix} file name but --format is {fmt}")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise UserError(f"-o {output}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"-o {output}: cannot write a file in {folder} (not writable)")
    if os.path.isdir(output):
        raise UserError(f"-o {output} is a folder: give a file name")
    return fmt or named


def write_frame(frame: pd.DataFrame, output: str | None) -> None:
    """CSV or Parquet by the file's suffix; CSV to stdout without a file."""
    # 10 significant digits hide the binary noise of summed decimal sizes (0.1 + 0.2 ...)
    if output is None:
        frame.to_csv(sys.stdout, index=False, float_format="%.10g")
    elif output.endswith((".parquet", ".pq")):
        frame.to_parquet(output, index=False)
    elif output.endswith(".csv"):
        frame.to_csv(output, index=False, float_format="%.10g")
    else:
        _check_output(output)


def _check_output(output: str) -> None:
    if not output.endswith((".parquet", ".pq", ".csv")):
        raise UserError(f"-o {output}: use a .csv or .parquet file name")


# studies ---------------------------------------------------------------------------------------

@main.command()
@click.argument("name", required=False)
@click.argument("symbol", required=False)
@click.option("--list", "list_", is_flag=True, help="List the studies with groups and parameters.")
@click.option("--spec", default="1m", show_default=True, help="Bar spec, e.g. 5m, T500, R8.")
@click.option("--start", default=None, help="Start time (UTC unless an offset is given).")
@click.option("--end", default=None, help="End time, exclusive.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A study parameter, e.g. --param timeperiod=21 (repeatable).")
@click.option("--tf", "higher", default=None, metavar="SPEC",
              help="Compute an indicator on this higher timeframe (e.g. 1h), aligned to --spec "
                   "bars without look-ahead.")
@click.option("-o", "--output", default=None, help="File to write (.csv or .parquet); "
                                                     "CSV to stdout when not given.")
@click.pass_context
def study(ctx, name, symbol, list_, spec, start, end, params, higher, output):
    """Run study NAME over SYMBOL's stored bars (or --list the studies)."""
    from .studies import list_studies

    if list_:
        write_frame(list_studies(), output)
        return
    if not name or not symbol:
        raise UserError("give a study NAME and a SYMBOL (or --list)")
    pairs = dict(_key_value(p, "--param") for p in params)
    if output is not None:
        _check_output(output)
    frame = _run(ctx, "study", name=name, symbol=symbol, spec=spec, start=start, end=end,
                 params=pairs, tf=higher).frame
    write_frame(frame, output)


# simulator -------------------------------------------------------------------------------------

@main.command()
@click.argument("symbols", nargs=-1, required=True)
@click.option("--days", type=click.FloatRange(0, 3660, min_open=True), default=2.0,
              show_default=True, help="History to fill first.")
@click.option("--end", default=None, metavar="TIME",
              help="End the history at this time (UTC unless an offset is given) instead of now; "
                   "with --no-live.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--trades-per-day", type=click.IntRange(1), default=200_000, show_default=True)
@click.option("--live/--no-live", default=True, show_default=True,
              help="Keep streaming live trades after the history.")
@click.option("--speed", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Live speed-up factor (1 = real time).")
@click.option("--duration", type=click.FloatRange(0, min_open=True), default=None,
              help="Stop live streaming after N seconds.")
@click.pass_context
def simulate(ctx, symbols, days, end, seed, trades_per_day, live, speed, duration):
    """Fill each of SYMBOLS with simulated history, then stream simulated live order flow into
    the store (all symbols at once; a symbol whose session is closed waits for its open)."""
    from data_access.frames import bounds

    from .ingest.simulator import SERVED_FAR_LEVELS, MarketSimulator
    from .live.simulated import opens_in_words

    if end is not None and live:
        raise UserError("--end fixes where the history ends, but live streaming goes on from "
                        "now: add --no-live, or leave out --end")
    end = bounds(end, None)[0] if end is not None else pd.Timestamp.now(tz="UTC").floor("min")
    start = end - pd.Timedelta(days=days).round("1s")  # 0.3 days is not whole nanoseconds
    _not_served(ctx, "tradeflow serve --simulate " + ",".join(symbols))
    with _open(ctx) as store:
        sims = {s: MarketSimulator(store.instrument(s), seed=seed, trades_per_day=trades_per_day,
                                   far_levels=SERVED_FAR_LEVELS)
                for s in dict.fromkeys(symbols)}
        for symbol, sim in sims.items():
            n, made = _fill_history(store, sim, symbol, start, end)
            if n < made:  # (the simulator is seeded: the same trades, with the same ids)
                click.echo(f"{symbol}: {n:,} new simulated trades from {start} to {end} "
                           f"({made - n:,} were stored already)")
            else:
                click.echo(f"{symbol}: {n:,} simulated trades from {start} to {end}")
            if made == 0:
                click.echo(f"{symbol}: its session ({sim.instrument.session}) was closed all that "
                           f"time; {opens_in_words(sim, end)}")
    if live:  # through the live pipeline, on the store's async face
        asyncio.run(_stream_all(ctx.obj["store_url"], sims, speed, duration))


def _fill_history(store, sim, symbol, start, end) -> tuple[int, int]:
    """The trades stored anew, and the trades simulated (some may have been stored before)."""
    from .live.simulated import fill_history

    with click.progressbar(length=int((end - start).total_seconds()),
                           label=f"{symbol} history") as bar:
        done, made = [start], [0]

        def advance(batch):
            bar.update(int((batch.end - done[0]).total_seconds()))
            done[0] = batch.end
            made[0] += len(batch.trades)
        return fill_history(store, sim, symbol, start, end, on_batch=advance), made[0]


async def _stream_all(url, sims, speed, duration):
    """Stream every simulator into the store through one live pipeline, as any source does."""
    from data_access import open_async_store

    from .live import Pipeline

    store = await open_async_store(url)
    pipeline = Pipeline(store)
    try:
        await pipeline.start()
        await _stream_each(pipeline, sims, speed, duration)
    finally:
        await pipeline.stop()  # writes what was queued when the time was up
        await store.close()


async def _stream_each(pipeline, sims, speed, duration):
    from .live.simulated import opens_in_words

    now = pd.Timestamp.now(tz="UTC")
    closed = [s for s, sim in sims.items() if sim.next_open(now) != now]
    trading = [s for s in sims if s not in closed]
    for symbol in closed:
        click.echo(f"{symbol}: session closed now; {opens_in_words(sims[symbol], now)}. Its "
                   "streaming starts then" + (f"; meanwhile {', '.join(trading)} streams." if trading else
                                    "."))
    tasks = [_stream(pipeline, sim, symbol, speed) for symbol, sim in sims.items()]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), duration)
    except asyncio.TimeoutError:
        pass


async def _stream(pipeline, sim, symbol, speed):
    from .live.simulated import stream_simulated

    shown = time.monotonic()

    def show(n, batch):
        nonlocal shown
        now = time.monotonic()
        if now - shown >= 5 and len(batch.trades):
            click.echo(f"{symbol} live: {n:,} trades, last {batch.trades['price'].iloc[-1]:g}")
            shown = now

    await stream_simulated(pipeline, sim, symbol, speed, on_batch=show)


# API keys --------------------------------------------------------------------------------------

@main.group()
def apikey():
    """API keys for the HTTP and websocket API (X-API-Key): create, list, revoke."""


@apikey.command("create")
@click.argument("name")
@click.option("--timezone", "timezone", default="UTC", show_default=True,
              help="Zone of the times this key's feeder sends without a zone (Sierra Chart sends "
                   "its chart's time zone), e.g. America/New_York.")
@click.pass_context
def apikey_create(ctx, name, timezone):
    """Make a key named NAME and print it (once: only its hash is stored)."""
    _echo(_run(ctx, "apikey_create", name=name, timezone=timezone))


@apikey.command("list")
@click.pass_context
def apikey_list(ctx):
    """List the keys (names, zones, when made or revoked; never the keys)."""
    _echo(_run(ctx, "apikey_list"))


@apikey.command("revoke")
@click.argument("name")
@click.pass_context
def apikey_revoke(ctx, name):
    """Revoke the active key named NAME (at once, also in a running server)."""
    _echo(_run(ctx, "apikey_revoke", name=name))


# serve -----------------------------------------------------------------------------------------

@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on: loopback (this machine only) unless told otherwise; "
                   "reads from other machines then need an API key too.")
@click.option("--port", type=click.IntRange(0, 65535), default=5006, show_default=True,
              help="Port (0: any free one).")
@click.option("--simulate", "simulate", default=None, metavar="SYMBOLS",
              help="Stream simulated order flow of these stored symbols (comma-separated).")
@click.option("--no-simulate", "no_simulate", is_flag=True, help="No simulator (the default).")
@click.option("--store", "store", default=None, help="Store URL (as tradeflow --store).")
@click.option("--max-pending-rows", type=click.IntRange(1), default=2_000_000, show_default=True,
              help="Rows that may wait for the store; past that, feeders are told to slow down.")
@click.option("--embed-origins", "embed_origins", default=None, metavar="ORIGINS",
              help="Origins (scheme://host[:port], comma-separated) whose pages may show /embed "
                   "in an iframe. Also $TRADEFLOW_EMBED_ORIGINS; default: none.")
@click.pass_context
def serve(ctx, host, port, simulate, no_simulate, store, max_pending_rows, embed_origins):
    """Serve the pages, the HTTP and websocket API and the live pipeline in one process."""
    from .model import validate_symbol
    from .server.app import run

    if simulate and no_simulate:
        raise UserError("--simulate and --no-simulate: choose one")
    symbols = [validate_symbol(s.strip()) for s in (simulate or "").split(",") if s.strip()]
    origins = config.embed_origins(embed_origins)
    url = config.store_url(store) if store is not None else ctx.obj["store_url"]
    asyncio.run(run(url, host, port, symbols, ready=lambda line: click.echo(line),
                    max_pending_rows=max_pending_rows, embed_origins=origins))


if __name__ == "__main__":
    main()

"""The desk's watchlist is refreshed by sending the cells that changed, not a new table, when it
holds the same symbols (a new table per session every 2 s was a burst of the server's loop)."""
import pandas as pd
import panel as pn
from bokeh.document import Document

from dashboards.apps.desk import patch_changed_cells

ROWS = pd.DataFrame({"symbol": ["BTCUSDT", "ES"], "last": ["100.0", "5,000.25"],
                     "chg": ["+1.00%", "-0.10%"], "volume": ["1,200", "300"]})


def table_in_a_document():
    table = pn.widgets.Tabulator(ROWS.copy(), show_index=False, disabled=True)
    doc = Document()
    model = table.get_root(doc)
    doc.add_root(model)
    events = []
    doc.on_change(lambda event: events.append(event))
    return table, model, events


def test_only_the_changed_cells_are_sent():
    table, model, events = table_in_a_document()
    later = ROWS.assign(last=["100.5", "5,000.25"], volume=["1,260", "300"])
    assert patch_changed_cells(table, later)
    # the changed cells patched (and Tabulator's cell styles), the table not sent again
    patched = [e for e in events if type(e).__name__ == "ColumnsPatchedEvent"]
    assert len(patched) == 1 and not any(type(e).__name__ == "ColumnDataChangedEvent"
                                         for e in events)
    assert patched[0].patches == {"last": [(0, "100.5")], "volume": [(0, "1,260")]}
    assert list(model.source.data["last"]) == ["100.5", "5,000.25"]
    pd.testing.assert_frame_equal(table.value, later)
    sent = len(events)
    assert patch_changed_cells(table, later) and len(events) == sent  # unchanged: nothing sent


def test_other_symbols_are_left_to_a_new_table():
    table, _, events = table_in_a_document()
    for rows in (ROWS.iloc[:1], ROWS.assign(symbol=["BTCUSDT", "NQ"]), ROWS[["symbol", "last"]]):
        assert not patch_changed_cells(table, rows)
    assert events == []
    pd.testing.assert_frame_equal(table.value, ROWS)


def test_sessions_asking_while_the_watchlist_is_read_share_the_read(tmp_path, monkeypatch):
    """The sessions' refreshes run on the reader threads; those that ask while a read runs
    wait for it and take its rows, rather than each starting a read of its own."""
    import threading
    import time

    from dashboards.apps import desk
    from data_access import open_store
    from tradeflow.marketdata import MarketData
    from tradeflow.model import Instrument

    store = open_store(f"duckdb:///{tmp_path / 'watch.duckdb'}")
    store.add_instrument(Instrument("ES", 0.25, exchange="CME"))
    marketdata = MarketData(store)
    reads = []
    real = desk._watch_rows

    def slow_read(md):  # the real read, made slow enough for every session to ask meanwhile
        reads.append(1)
        time.sleep(0.3)
        return real(md)

    monkeypatch.setattr(desk, "_watch_rows", slow_read)
    monkeypatch.setattr(desk, "_WATCHED", {})
    start, got = threading.Barrier(8), []

    def session():
        start.wait()
        got.append(desk._shared_watch_rows(marketdata))

    threads = [threading.Thread(target=session) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reads) == 1 and len(got) == 8 and all(g is got[0] for g in got)
    assert got[0][0] == ["ES"]

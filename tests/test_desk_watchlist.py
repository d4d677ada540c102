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

"""The time axis' labels, run in Chromium's JavaScript as Bokeh runs them: on a narrow chart no
label runs past the frame's edge (the footprint's first one sat under its price axis), labels
too close to be read are thinned to every n-th tick, and the first label drawn reads the date."""
import numpy as np
import pandas as pd
from bokeh.models import ColumnDataSource

from dashboards.components.axes import EDGE_PX, LABEL_PX, T, X, local_ms, time_formatter

# the formatter's code as BokehJS calls it: its args by name, then tick, index, ticks
RUN = """([code, names, args, ticks]) => {
  const f = new Function(...names, 'tick', 'index', 'ticks', code);
  return ticks.map((t, i) => f(...args, t, i, ticks));
}"""


def _labels(page, fmt, source, plot, ticks):
    """The labels of ``ticks``; ``plot``: a plain object standing for the Plot model."""
    names = list(fmt.args)
    args = [{"data": {X: list(source.data[X]), T: [float(t) for t in source.data[T]]}}
            if n == "source" else plot for n in names]
    return page.evaluate(RUN, [fmt.code, names, args, ticks])


def test_time_labels_stay_inside_the_frame_and_apart():
    from tests.browser import browser_page

    ts = pd.date_range("2026-11-30 07:30", periods=16, freq="1min", tz="UTC")
    source = ColumnDataSource({X: list(range(16)), T: local_ms(ts, "UTC").tolist()})
    ticks = list(range(0, 16, 2))
    with browser_page(400, 300) as page:
        # 240 px for 16 bars: ticks 30 px apart, the first 7.5 px from the frame's left edge
        plot = {"inner_width": 240, "x_range": {"start": -0.5, "end": 15.5}}
        fmt = time_formatter(source)
        labels = _labels(page, fmt, source, plot, ticks)
        px = [(t + 0.5) / 16 * 240 for t in ticks]
        drawn = [(p, text) for p, text in zip(px, labels) if text]
        assert len(drawn) >= 3, labels
        assert all(EDGE_PX <= p <= 240 - EDGE_PX for p, _ in drawn), labels
        assert min(np.diff([p for p, _ in drawn])) >= LABEL_PX, labels
        assert drawn[0][1] == "30 Nov" and drawn[1][1] == "07:38", labels
        # wide: every tick labelled, the first 37 px in
        wide = _labels(page, fmt, source, dict(plot, inner_width=1200), ticks)
        assert wide[0] == "30 Nov" and wide[1] == "07:32" and all(wide), wide
        # without the plot (not laid out yet): every label, the first the date
        plain = _labels(page, fmt, source, None, ticks)
        assert plain[0] == "30 Nov" and plain[1] == "07:32" and all(plain), plain

"""The chart components of the desk, the notebooks and the embeds: ``param``-based Panel
``Viewer`` s drawn with Bokeh (Datashader where there are too many cells to draw one by one).

Conventions every bar-based view keeps, so their panes share one time axis:

* x is the bar's sequence number (:data:`axes.X`), not its time: bars of any spec (tick, volume,
  Renko) sit side by side and closed sessions leave no gap; the time labels come from
  :func:`axes.time_formatter`. Older history loaded on scroll-back takes numbers below the first.
* colours come from a :class:`theme.Theme`; every figure is made by :func:`theme.figure`.
* a view draws a whole frame with ``load(...)`` and follows the hub with ``apply(update)``:
  closed bars are streamed once, the forming bar is patched in place (``tradeflow.live.hub``
  messages).

The book views are not bar-based: the order-book heatmap (:mod:`.heatmap`) has a TRUE time x
axis; the tape (:mod:`.tape`) and the DOM ladder (:mod:`.dom`) are tables drawn on a canvas, the
ladder's rows at y = price (it may share a price chart's ``y_range``).
"""

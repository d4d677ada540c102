"""Dark and light colours for every view, and the one way figures are made and styled."""
from __future__ import annotations

from dataclasses import dataclass

from bokeh.models import CrosshairTool, Span
from bokeh.plotting import figure as bokeh_figure

__all__ = ["Theme", "THEMES", "theme_of", "figure", "style", "crosshair_tool"]


@dataclass(frozen=True)
class Theme:
    name: str
    background: str
    border: str
    grid: str
    text: str
    muted: str
    up: str        # a rising bar, buying, bid x ask's ask side
    down: str      # a falling bar, selling, the bid side
    neutral: str
    accent: str    # lines of studies drawn first, selection
    poc: str
    value_area: str
    crosshair: str
    palette: tuple[str, ...]  # study lines, in turn


THEMES = {
    "dark": Theme("dark", background="#131722", border="#131722", grid="#1f2430",
                  text="#d1d4dc", muted="#787b86", up="#26a69a", down="#ef5350",
                  neutral="#9598a1", accent="#2962ff", poc="#ffb300", value_area="#5d6b8a",
                  crosshair="#9598a1",
                  palette=("#2962ff", "#ff9800", "#e040fb", "#00bcd4", "#cddc39", "#f06292")),
    "light": Theme("light", background="#ffffff", border="#ffffff", grid="#eef0f3",
                   text="#131722", muted="#6a6d78", up="#089981", down="#f23645",
                   neutral="#787b86", accent="#2962ff", poc="#e65100", value_area="#b0bec5",
                   crosshair="#9598a1",
                   palette=("#2962ff", "#ff6d00", "#aa00ff", "#00838f", "#827717", "#c2185b")),
}


def theme_of(name: str) -> Theme:
    try:
        return THEMES[name]
    except KeyError:
        raise ValueError(f"theme {name!r}: use one of {', '.join(THEMES)}") from None


def style(fig, theme: Theme) -> None:
    """Colour a figure (background, grid, axes, title, toolbar-less legend) by ``theme``."""
    fig.background_fill_color = theme.background
    fig.border_fill_color = theme.border
    fig.outline_line_color = theme.grid
    for grid in fig.grid:
        grid.grid_line_color = theme.grid
    for axis in fig.axis:
        axis.axis_line_color = theme.grid
        axis.major_tick_line_color = theme.grid
        axis.minor_tick_line_color = None
        axis.major_label_text_color = theme.text
        axis.axis_label_text_color = theme.muted
    if fig.title is not None:
        fig.title.text_color = theme.text
    for legend in fig.legend:
        legend.background_fill_alpha = 0
        legend.border_line_alpha = 0
        legend.label_text_color = theme.text


def crosshair_tool(theme: Theme) -> CrosshairTool:
    """A crosshair in ``theme``'s colour, to pass to every pane of one chart."""
    return CrosshairTool(overlay=[
        Span(dimension="width", line_dash="dotted", line_color=theme.crosshair, line_width=1),
        Span(dimension="height", line_dash="dotted", line_color=theme.crosshair, line_width=1)])


def figure(theme: Theme, *, height: int | None = None, x_range=None, y_range=None,
           crosshair: CrosshairTool | None = None, **kw):
    """A figure in ``theme`` with the desk's tools: pan and wheel-zoom along time, box zoom,
    reset, and ``crosshair`` (pass the same tool to every pane of a chart so one crosshair runs
    through them all). ``x_range``: share it between the panes of a chart."""
    opts = dict(sizing_mode="stretch_both" if height is None else "stretch_width",
                tools="xpan,xwheel_zoom,box_zoom,reset,save", active_drag="xpan",
                active_scroll="xwheel_zoom", toolbar_location="right")
    if height is not None:
        opts["height"] = height
    if x_range is not None:
        opts["x_range"] = x_range
    if y_range is not None:
        opts["y_range"] = y_range
    opts.update(kw)
    fig = bokeh_figure(**opts)
    fig.add_tools(crosshair or crosshair_tool(theme))
    fig.toolbar.logo = None
    fig.min_border_left = 10
    style(fig, theme)
    return fig

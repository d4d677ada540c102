"""A served page whose browser may look but not change: what a read-only document (the embed's)
takes from its browser over the Bokeh websocket.

Bokeh applies every change the browser sends (a PATCH-DOC message) to the session's document.
A read-only page has no widget, so what viewing needs is narrow, and only that is applied:

* a range's ``start``/``end`` (pan, zoom, reset) and a plot's measured size;
* what the browser reports about itself (Panel's ``BrowserInfo``: time zone, dark mode...);
* the ``data`` of sources the page names as written by its own browser code (the footprint's
  viewport report, read on the server to re-render the cells in view);
* Bokeh's plot events (``rangesupdate``, mouse, pan, pinch, wheel, tap, reset...) and
  ``document_ready`` (Panel's ``onload``).

What the views' own browser code writes for display only (the crosshair's lines, the readout's
text) is dropped without a word: the server does not need it. Anything else -- a widget or
Panel model's property (``Location.search`` among them), a text,
a source's data, a new root, a title -- is dropped and logged, so a forged message cannot turn
the page into something else. Each session's document is its own: nothing here reaches another
viewer's page.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable

from bokeh.core.serialization import Serialized
from bokeh.document import Document
from bokeh.events import DocumentReady, PlotEvent
from bokeh.models import Div, LayoutDOM, Model, Range, Span
from panel.models.browser import BrowserInfo

__all__ = ["read_only", "allowed", "VIEW_EVENTS"]

log = logging.getLogger(__name__)


def _event_names(cls) -> set[str]:
    names = {cls.event_name} if getattr(cls, "event_name", None) else set()
    for sub in cls.__subclasses__():
        names |= _event_names(sub)
    return names


VIEW_EVENTS = frozenset(_event_names(PlotEvent) | {DocumentReady.event_name})
RANGE_ATTRS = frozenset({"start", "end"})
SIZE_ATTRS = frozenset({"inner_width", "inner_height", "outer_width", "outer_height"})
# written by the browser for display only (the crosshair's spans, the readout): not applied
DISPLAY_ONLY = ((Span, "location"), (Div, "text"))


def allowed(doc: Document, event: dict, writable: Iterable[Model] = ()) -> bool:
    """Whether the browser's patch ``event`` (its wire form) is one viewing needs."""
    kind = event.get("kind")
    if kind == "MessageSent":
        data = event.get("msg_data")
        return event.get("msg_type") == "bokeh_event" and isinstance(data, dict) and \
            data.get("name") in VIEW_EVENTS
    ref = event.get("model")
    model = doc.get_model_by_id(ref.get("id")) if isinstance(ref, dict) else None
    attr = event.get("attr")
    if model is None:
        return False
    if kind == "ModelChanged":
        if isinstance(model, BrowserInfo):
            return True
        if isinstance(model, Range):
            return attr in RANGE_ATTRS
        if isinstance(model, LayoutDOM):
            return attr in SIZE_ATTRS
    if kind in ("ModelChanged", "ColumnDataChanged") and attr == "data":
        return any(model is w for w in writable)
    return False


def _describe(doc: Document, event: dict) -> str:
    ref = event.get("model")
    model = doc.get_model_by_id(ref.get("id")) if isinstance(ref, dict) else None
    if event.get("kind") == "MessageSent":
        data = event.get("msg_data")
        name = data.get("name") if isinstance(data, dict) else None
        return f"MessageSent {event.get('msg_type')!r} {name!r}"
    return f"{event.get('kind')} {type(model).__name__}.{event.get('attr')}"


def _quiet(doc: Document, event) -> bool:
    """Whether dropping ``event`` needs no word: a model the page no longer holds (views
    replaced after a load: Bokeh's usual race), or a display-only change."""
    ref = event.get("model") if isinstance(event, dict) else None
    if not isinstance(ref, dict):
        return False
    model = doc.get_model_by_id(ref.get("id"))
    if model is None:
        return doc.models.seen(ref.get("id"))
    return event.get("kind") == "ModelChanged" and any(
        isinstance(model, cls) and event.get("attr") == attr for cls, attr in DISPLAY_ONLY)


def read_only(doc: Document, writable: Callable[[], Iterable[Model]] = tuple) -> None:
    """Make ``doc`` (a session's document) take from its browser only what :func:`allowed`
    lets through; ``writable()`` gives the sources the page's own browser code writes (asked at
    each message: views are built after the document)."""
    apply = doc.apply_json_patch

    def apply_json_patch(patch, *, setter=None):
        content = patch.content if isinstance(patch, Serialized) else patch
        events = list(content.get("events", [])) if isinstance(content, dict) else []
        sources = list(writable())
        keep = [e for e in events if isinstance(e, dict) and allowed(doc, e, sources)]
        if len(keep) < len(events):
            refused = sorted({_describe(doc, e) if isinstance(e, dict) else repr(type(e))
                              for e in events if not any(e is k for k in keep)
                              and not _quiet(doc, e)})
            if refused:
                log.warning("read-only page: refused from the browser: %s", "; ".join(refused))
            if not keep:
                return
            content = dict(content, events=keep)
            patch = Serialized(content, patch.buffers) if isinstance(patch, Serialized) \
                else content
        apply(patch, setter=setter)

    doc.apply_json_patch = apply_json_patch

"""``dashboards.patch_messages``: PATCH-DOC messages reuse a document's references while its
models do not change, carry small arrays inline, encode a read-only array once for every
session, and say what Bokeh's own ``create`` says."""
from __future__ import annotations

import numpy as np
from bokeh.document import Document
from bokeh.document.models import DocumentModelManager
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from bokeh.protocol import Protocol
from bokeh.core.serialization import Serializer
from bokeh.protocol.messages.patch_doc import patch_doc

from dashboards.patch_messages import (BOKEH_CREATE, INLINE_BYTES, SyncedModels,
                                       light_patch_messages, shared_encoding)

PROTOCOL = Protocol()


class Events:
    """The events a document sends (as a session's connection gathers them)."""

    def __init__(self, doc: Document):
        self.events: list = []
        doc.on_change(self.events.append)

    def take(self) -> list:
        out, self.events[:] = list(self.events), []
        return out


def _doc():
    doc = Document()
    source = ColumnDataSource({"x": [0.0, 1.0], "y": [2.0, 3.0]})
    fig = figure()
    fig.line("x", "y", source=source)
    doc.add_root(fig)
    doc.models.flush_synced()  # as after the browser pulled the document
    return doc, fig, source


def _both(doc, events) -> tuple[dict, dict]:
    """(Bokeh's message, ours) for the same events and the same synced models."""
    new = set(doc.models._new_models)
    theirs = BOKEH_CREATE(patch_doc, events)
    doc.models._new_models = new  # as before Bokeh's message flushed them
    ours = PROTOCOL.create("PATCH-DOC", events)
    return theirs.content, ours.content


def test_messages_are_bokehs_own_and_new_models_are_sent_whole():
    doc, fig, source = _doc()
    light_patch_messages(doc)
    assert isinstance(doc.models, SyncedModels)
    events = Events(doc)

    source.patch({"y": [(0, 5.0)]})  # a known model: by reference
    theirs, ours = _both(doc, events.take())
    assert ours == theirs
    assert ours["events"][0]["model"] == {"id": source.id}

    # a new model (a second line and its source): sent whole once, then by reference
    other = ColumnDataSource({"x": [1.0], "y": [4.0]})
    fig.scatter("x", "y", source=other)
    theirs, ours = _both(doc, events.take())
    assert ours == theirs
    whole = [r for r in _refs(ours) if r.get("id") == other.id and "attributes" in r]
    assert whole, "the new source was not sent whole"

    other.patch({"y": [(0, 6.0)]})
    theirs, ours = _both(doc, events.take())
    assert ours == theirs
    assert ours["events"][0]["model"] == {"id": other.id}


def test_references_are_kept_until_the_models_change(monkeypatch):
    doc, fig, source = _doc()
    light_patch_messages(doc)
    events = Events(doc)
    made = []  # each time the synced models are gathered (Bokeh: for every message)
    gather = DocumentModelManager.synced_references.fget
    monkeypatch.setattr(DocumentModelManager, "synced_references",
                        property(lambda self: made.append(1) or gather(self)))
    for i in range(5):
        source.patch({"y": [(0, float(i))]})
        PROTOCOL.create("PATCH-DOC", events.take())
    assert len(made) == 1

    other = ColumnDataSource({"x": [1.0], "y": [4.0]})
    fig.scatter("x", "y", source=other)  # models added: gathered again (new ones apart)
    msg = PROTOCOL.create("PATCH-DOC", events.take())
    assert len(made) == 2
    assert any(r.get("id") == other.id and "attributes" in r for r in _refs(msg.content))
    for i in range(3):  # sent whole: synced now, gathered once more, then kept
        other.patch({"y": [(0, float(i))]})
        msg = PROTOCOL.create("PATCH-DOC", events.take())
        assert msg.content["events"][0]["model"] == {"id": other.id}
    assert len(made) == 3
    assert id(other) in doc.models.synced_refs


def test_small_arrays_go_inside_the_message_large_ones_as_buffers():
    doc, _fig, source = _doc()
    light_patch_messages(doc)
    events = Events(doc)
    small = np.array([1.5, np.nan])
    source.patch({"y": [(slice(0, 2), small)]})
    msg = PROTOCOL.create("PATCH-DOC", events.take())
    assert msg.buffers == []  # no frames of their own (Bokeh: one buffer, two frames)
    theirs = BOKEH_CREATE(patch_doc, [_patched(doc, source, small)])
    assert len(theirs.buffers) == 1
    assert _values(msg.content) == _values(theirs.content) == small.tobytes()

    large = np.arange(INLINE_BYTES // 8 + 1, dtype="float64")
    source.stream({"x": large, "y": large})
    msg = PROTOCOL.create("PATCH-DOC", events.take())
    assert len(msg.buffers) == 2


def _patched(doc, source, values):
    """A patch event of ``values`` into ``source`` (not applied again)."""
    from bokeh.document.events import ColumnsPatchedEvent
    return ColumnsPatchedEvent(doc, source, "data", {"y": [(slice(0, 2), values)]})


def _values(content) -> bytes:
    """The bytes of the first array patched in a message's content."""
    rep = content["events"][0]["patches"]["entries"][0][1][0][1]["array"]
    data = rep["data"]
    if isinstance(data, str):
        import base64
        import gzip
        return gzip.decompress(base64.b64decode(data))
    return bytes(data.to_bytes())  # a Buffer (sent as a frame of its own)


def test_other_documents_get_bokehs_create():
    doc, _fig, source = _doc()
    light_patch_messages(Document())  # the patch is in place; this document is not set up
    assert type(doc.models) is not SyncedModels
    events = Events(doc)
    source.patch({"y": [(0, 5.0)]})
    msg = PROTOCOL.create("PATCH-DOC", events.take())
    assert msg.content["events"][0]["model"] == {"id": source.id}


def _refs(content) -> list[dict]:
    """Every dict with an ``id`` in a message's content."""
    out, todo = [], [content]
    while todo:
        v = todo.pop()
        if isinstance(v, dict):
            if "id" in v:
                out.append(v)
            todo.extend(v.values())
        elif isinstance(v, list):
            todo.extend(v)
    return out


def _columns_changed(doc, events) -> dict:
    """The encoded columns of a message's ColumnDataChanged event."""
    msg = PROTOCOL.create("PATCH-DOC", events.take())
    [event] = msg.content["events"]
    assert event["kind"] == "ColumnDataChanged"
    return dict(event["data"]["entries"])


def test_a_read_only_array_is_encoded_once_for_every_session():
    # two sessions' documents given the same read-only columns (a live update's shared arrays)
    volume = np.array([3.0, 1.5, np.nan])
    words = np.array(["12", "5", "+7"], dtype=object)
    for array in (volume, words):
        array.setflags(write=False)
    sent = []
    for _ in range(2):
        doc = Document()
        source = ColumnDataSource({"volume": [0.0, 0.0, 0.0], "words": ["", "", ""]})
        doc.add_root(source)
        doc.models.flush_synced()
        light_patch_messages(doc)
        events = Events(doc)
        source.data.update({"volume": volume, "words": words})
        sent.append(_columns_changed(doc, events))
    mine, yours = sent
    assert mine["volume"] is yours["volume"] and mine["words"] is yours["words"]
    # Bokeh's own form of them
    theirs = Serializer().encode({"volume": volume, "words": words})["entries"]
    assert dict(theirs)["words"] == mine["words"]
    raw = mine["volume"]["array"]["data"]
    import base64
    import gzip
    assert np.array_equal(np.frombuffer(gzip.decompress(base64.b64decode(raw))), volume,
                          equal_nan=True)


def test_arrays_that_may_change_are_encoded_each_time():
    doc, _fig, source = _doc()
    light_patch_messages(doc)
    events = Events(doc)
    writable = np.array([1.0, 2.0])
    source.data.update({"y": writable})
    first = _columns_changed(doc, events)["y"]
    writable[0] = 9.0  # changed in place: the next message says so
    source.data.update({"y": writable})
    again = _columns_changed(doc, events)["y"]
    assert again is not first and again != first
    base = np.array([1.0, 2.0])
    view = base[:]
    view.setflags(write=False)  # read-only, but its base may still change
    assert not shared_encoding(view) and not shared_encoding(writable)
    frozen = np.array([source], dtype=object)
    frozen.setflags(write=False)  # models: encoded as references of each message
    assert not shared_encoding(frozen)

"""Lighter Bokeh ``PATCH-DOC`` messages for a session's live updates: the same events, less work.

With 20 desk sessions at 4 updates a second, making and writing these messages was about half
of the server's loop (py-spy), in two places:

* **References.** Bokeh 3.9's ``patch_doc.create`` makes ``Serializer(references=
  doc.models.synced_references)`` for every message: a set of every model the browser has, then
  a ``Ref`` of each. A desk's document holds a few thousand models: 18% of the loop. Here the
  document's model manager (:class:`SyncedModels`, Bokeh's own with its class swapped) keeps
  those references until its models change: Bokeh recomputes them (a model added or removed,
  any property set to a model), models it sent whole become synced, or one is set by id. A
  message starts from a copy of them, as Bokeh's serializer does from its set, so a model the
  browser has is sent as a reference and a new one whole (a reference from the next message on).
* **Frames.** Bokeh sends every numpy array of a message as a binary buffer of its own: two
  websocket frames (a header and the bytes), each a socket write, and ``make_id`` reading the
  environment. A live update patches a few values in a dozen columns, so a message was some
  30 writes for 3.6 kB. Arrays up to :data:`INLINE_BYTES` are written into the message's JSON
  instead, gzipped and base64 (Bokeh's own form when it does not defer buffers, which BokehJS
  reads the same way); larger ones (a load, an image) stay binary buffers.
* **Shared arrays.** Sessions showing the same live update patch their sources with the same
  arrays (the footprint's forming bar: ``footprint_cells.forming_rows``), made read-only. Such an
  array (read-only, owning its data, numbers or strings, up to :data:`INLINE_BYTES`) cannot
  change, so its encoded form is kept while it lives (:data:`ENCODED_KEPT` at most) and written
  into every session's message from there: once per process, not once per session.

:func:`light_patch_messages` sets a session's document up; other documents (notebooks, other
apps) get Bokeh's ``create`` unchanged.
"""
from __future__ import annotations

import weakref
from typing import Any, Callable

import numpy as np

from bokeh.core.serialization import Buffer, Serializer
from bokeh.core.types import ID
from bokeh.document.models import DocumentModelManager
from bokeh.protocol.messages.patch_doc import PatchJson, patch_doc

__all__ = ["SyncedModels", "light_patch_messages", "BOKEH_CREATE", "INLINE_BYTES",
           "ENCODED_KEPT", "shared_encoding"]

BOKEH_CREATE = patch_doc.create.__func__  # Bokeh's own, for the documents not set up
INLINE_BYTES = 4096  # arrays up to this size go inside the message, not as a buffer
ENCODED_KEPT = 1024  # encoded read-only arrays kept (the oldest dropped first)
_ENCODED: dict[int, tuple] = {}  # id(array) -> (weak reference to it, its encoded form)


class SyncedModels(DocumentModelManager):
    """A document's models that keep the ``Ref`` of each synced model (those not new) until
    the set changes (see the module's docstring)."""

    _synced_refs: dict | None = None

    @property
    def synced_refs(self) -> dict:
        """``{id(model): model.ref}`` of the synced models, what Bokeh's ``Serializer`` builds
        from ``synced_references``; kept until the models change."""
        if self._synced_refs is None:
            self._synced_refs = {id(m): m.ref for m in self.synced_references}
        return self._synced_refs

    def recompute(self) -> None:
        super().recompute()
        self._synced_refs = None

    def flush_synced(self, is_still_new: Callable[[Any], bool] | None = None) -> None:
        if self._new_models:  # some may become synced now (an empty set stays empty)
            self._synced_refs = None
        super().flush_synced(is_still_new)

    def __setitem__(self, id, model) -> None:
        super().__setitem__(id, model)
        self._synced_refs = None


class _LightSerializer(Serializer):
    """Bokeh's serializer started from references already made, small arrays inline."""

    def __init__(self, refs: dict):
        super().__init__()
        # a copy: encoding adds the models it sends whole, which are not synced yet
        self._references = dict(refs)

    def _encode_ndarray(self, obj):
        kept = _ENCODED.get(id(obj))
        if kept is not None and kept[0]() is obj and not obj.flags.writeable:
            return kept[1]
        if not shared_encoding(obj):
            return super()._encode_ndarray(obj)
        rep = super()._encode_ndarray(obj)
        _ENCODED[id(obj)] = (weakref.ref(obj), rep)
        while len(_ENCODED) > ENCODED_KEPT:
            _ENCODED.pop(next(iter(_ENCODED)))
        return rep

    def _encode_bytes(self, obj):
        if (obj.nbytes if isinstance(obj, memoryview) else len(obj)) > INLINE_BYTES:
            return super()._encode_bytes(obj)
        # Bokeh's own inline form (gzip, then base64: BokehJS reads it so)
        return {"type": "bytes", "data": Buffer(ID("inline"), obj).to_base64()}


def shared_encoding(array) -> bool:
    """Whether ``array``'s encoded form is kept and reused: a numpy array that cannot change
    (read-only and owning its data), small (inline), of numbers or of strings (no models, whose
    encoding depends on the message)."""
    if not isinstance(array, np.ndarray) or array.flags.writeable or not array.flags.owndata \
            or array.nbytes > INLINE_BYTES or array.dtype.kind not in "biufO":
        return False
    return array.dtype.kind != "O" or all(type(v) is str for v in array.flat)


def _create(cls, events: list, **metadata: Any) -> patch_doc:
    """``patch_doc.create`` (Bokeh 3.9's steps) with the document's kept references."""
    docs = {event.document for event in events}
    if len(docs) != 1 or not isinstance(next(iter(docs)).models, SyncedModels):
        return BOKEH_CREATE(cls, events, **metadata)  # its own checks and errors
    [doc] = docs
    serializer = _LightSerializer(doc.models.synced_refs)
    patch_json = PatchJson(events=serializer.encode(events))
    doc.models.flush_synced(lambda model: not serializer.has_ref(model))
    msg = cls(cls.create_header(), metadata, patch_json)
    msg.add_buffers(*serializer.buffers)
    return msg


def light_patch_messages(doc) -> None:
    """Make ``doc``'s ``PATCH-DOC`` messages reuse its references and carry small arrays
    inline (idempotent)."""
    if patch_doc.create.__func__ is not _create:
        patch_doc.create = classmethod(_create)
    if type(doc.models) is DocumentModelManager:
        doc.models.__class__ = SyncedModels

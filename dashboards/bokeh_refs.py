"""Bokeh's ``PATCH-DOC`` messages without rebuilding the document's references for each one.

Bokeh 3.9's ``patch_doc.create`` makes ``Serializer(references=doc.models.synced_references)``
for every message: a set of every model the browser has, then a ``Ref`` of each. A desk's
document holds a few thousand models, so with 20 sessions at 4 updates a second this was the
largest single cost of the server (18% of its loop, more than the charts' own updates).

:func:`use_synced_refs` makes a session's document keep those references while its models do
not change: its model manager (:class:`SyncedModels`, Bokeh's own, its class swapped) drops them
when Bokeh recomputes the models (a model added or removed), when models it sent whole become
synced, or when one is set by id. Messages then start from a copy of them, as Bokeh's own
serializer would from its set: a model the browser has is sent as a reference, a new one whole
(and is a reference from the next message on). Documents not set up so (notebooks, other apps)
get Bokeh's ``create`` unchanged.
"""
from __future__ import annotations

from typing import Any, Callable

from bokeh.core.serialization import Serializer
from bokeh.document.models import DocumentModelManager
from bokeh.protocol.messages.patch_doc import PatchJson, patch_doc

__all__ = ["SyncedModels", "use_synced_refs", "BOKEH_CREATE"]

BOKEH_CREATE = patch_doc.create.__func__  # Bokeh's own, for the documents not set up


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


class _KnownRefs(Serializer):
    """Bokeh's serializer started from references already made."""

    def __init__(self, refs: dict):
        super().__init__()
        # a copy: encoding adds the models it sends whole, which are not synced yet
        self._references = dict(refs)


def _create(cls, events: list, **metadata: Any) -> patch_doc:
    """``patch_doc.create`` (Bokeh 3.9's steps) with the document's kept references."""
    docs = {event.document for event in events}
    if len(docs) != 1 or not isinstance(next(iter(docs)).models, SyncedModels):
        return BOKEH_CREATE(cls, events, **metadata)  # its own checks and errors
    [doc] = docs
    serializer = _KnownRefs(doc.models.synced_refs)
    patch_json = PatchJson(events=serializer.encode(events))
    doc.models.flush_synced(lambda model: not serializer.has_ref(model))
    msg = cls(cls.create_header(), metadata, patch_json)
    msg.add_buffers(*serializer.buffers)
    return msg


def use_synced_refs(doc) -> None:
    """Make ``doc``'s ``PATCH-DOC`` messages reuse its references (idempotent)."""
    if patch_doc.create.__func__ is not _create:
        patch_doc.create = classmethod(_create)
    if type(doc.models) is DocumentModelManager:
        doc.models.__class__ = SyncedModels

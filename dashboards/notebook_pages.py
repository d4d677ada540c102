"""The analyst notebooks served read-only: ``/notebooks`` lists them, ``/notebooks/NAME`` runs
``NAME.ipynb`` as a page (Panel's notebook handler: the cells run on the server and the page
shows the outputs of the cells marked ``.servable()``, or every output when none is). Visitors
see the outputs only: no code, no kernel.

The folder is ``$TRADEFLOW_NOTEBOOKS``, else the project's ``notebooks/``. A notebook runs once
per page visit, in the server's process, with ``$TRADEFLOW_STORE`` the server's store; the
notebooks of this project read it, and write only when not served (``pn.state.served``).
Pages answer the clients every page answers (``dashboards.pages.client_allowed``).
"""
from __future__ import annotations

import html
import json
import logging
import os
import re
from pathlib import Path

import panel as pn
from bokeh.application import Application
from panel.io.handlers import NotebookHandler

from dashboards.pages import PageError, client_allowed, error_view, frame

__all__ = ["FOLDER", "PREFIX", "folder", "notebooks", "title_of", "notebook_pages"]

log = logging.getLogger(__name__)

FOLDER = "TRADEFLOW_NOTEBOOKS"  # the environment variable naming the folder served
PREFIX = "notebooks"  # URL path of the index; a notebook is at PREFIX/NAME
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # file stems that are URL paths as they are
_REFUSED = PageError("this page answers clients on this machine only",
                     "ask the operator: pages are shared through a reverse proxy with TLS and "
                     "authentication (see the README)")


def folder() -> Path:
    """The folder of the notebooks served."""
    named = os.environ.get(FOLDER)
    return Path(named) if named else Path(__file__).resolve().parent.parent / "notebooks"


def notebooks(where: Path | None = None) -> dict[str, Path]:
    """The notebooks served, by name (file stem), in name order; names that are not plain URL
    paths (letters, digits, ``_``, ``-``) are left out with a warning."""
    where = folder() if where is None else where
    found = {}
    for path in sorted(where.glob("*.ipynb")) if where.is_dir() else []:
        if _NAME.match(path.stem):
            found[path.stem] = path
        else:
            log.warning("notebook %s not served: its name is not a plain URL path", path.name)
    return found


def title_of(path: Path) -> str:
    """The notebook's first markdown heading, else its name."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        cells = []
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            text = cell.get("source", "")
            text = "".join(text) if isinstance(text, list) else text
            for line in text.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem.replace("_", " ")


def _remote_ip(doc) -> str | None:
    context = doc.session_context
    request = context.request if context else None
    return getattr(request, "remote_ip", None)


class ServedNotebook(NotebookHandler):
    """A notebook run for each page visit by a client that may open pages. A cell that fails
    gives a page saying which error stopped it, not a blank or half page."""

    def modify_document(self, doc):
        if not client_allowed(_remote_ip(doc)):
            log.warning("notebook page refused to %s", _remote_ip(doc))
            error_view(_REFUSED).server_doc(doc)
            return
        super().modify_document(doc)
        runner = self._runner
        if runner.failed and runner.error:  # (Panel records the error and shows nothing)
            name = Path(runner.path).name
            log.error("notebook %s stopped: %s", name, runner.error_detail)
            doc.clear()
            problem = runner.error.splitlines()[0]
            error_view(PageError(
                f"{name} stopped on this server's store: {problem}",
                "the notebook reads what this store holds: run it once in Jupyter against this "
                "store (or change what it reads), then reload")).server_doc(doc)


def _index(found: dict[str, Path]):
    def page():
        if not client_allowed(_remote_ip(pn.state.curdoc)):
            return error_view(_REFUSED)
        rows = "".join(
            f'<li><a href="/{PREFIX}/{name}">{html.escape(title_of(path))}</a> '
            f'<code>{html.escape(path.name)}</code></li>' for name, path in found.items())
        body = (f"<p>Research notebooks, run on this server's store each time a page opens "
                f"(read-only: the outputs, no code).</p><ul>{rows}</ul>" if rows else
                f"<p>No notebooks in {html.escape(str(folder()))}.</p>")
        return frame("TradeFlow notebooks", [pn.pane.HTML(body, sizing_mode="stretch_width")])
    return page


def notebook_pages(where: Path | None = None) -> dict:
    """The index and one page per notebook, by URL path, for ``pn.serve``."""
    found = notebooks(where)
    apps: dict = {PREFIX: _index(found)}
    for name, path in found.items():
        try:
            handler = ServedNotebook(filename=str(path))
        except (RuntimeError, ValueError) as exc:  # nbconvert missing, a file not a notebook
            log.error("notebook %s not served: %s", path.name, exc)
            continue
        if handler.failed:  # a notebook that is not valid Python: left out, the log says why
            log.error("notebook %s not served: %s", path.name, handler.error)
            continue
        apps[f"{PREFIX}/{name}"] = Application(handler)
    return apps

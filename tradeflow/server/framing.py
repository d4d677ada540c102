"""Who may show the server's pages in a frame of another site.

Only the embed page (:data:`EMBED_PATH`, with its websocket and autoload script under it) may be
framed, by the server itself and the configured origins (``tradeflow.config.embed_origins``):
``Content-Security-Policy: frame-ancestors 'self' <origins>``. Every other response (the desk,
the formula box, the API and its OpenAPI document, static files) says ``frame-ancestors 'self'``
and ``X-Frame-Options: SAMEORIGIN`` (for browsers without CSP), so a foreign page cannot frame
the desk and trick a click on it.

The headers are added by a Tornado output transform: one place for every handler of the server,
Bokeh's page, websocket and static handlers and the API's alike.
"""
from __future__ import annotations

from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.web import OutputTransform

__all__ = ["EMBED_PATH", "frame_policy", "is_embed_path"]

EMBED_PATH = "/embed"
CSP = "Content-Security-Policy"


def is_embed_path(path: str) -> bool:
    """Whether ``path`` is the embed page's (``/embed``, ``/embed/ws``, ``/embed/autoload.js``)."""
    return path == EMBED_PATH or path.startswith(EMBED_PATH + "/")


def frame_policy(embed_origins: list[str]) -> type[OutputTransform]:
    """The output transform that sends the frame headers, ``embed_origins`` (checked
    ``scheme://host[:port]`` origins) allowed to frame the embed page."""
    embed = " ".join(["frame-ancestors", "'self'", *embed_origins])

    class FramePolicy(OutputTransform):
        def __init__(self, request: HTTPServerRequest):
            super().__init__(request)
            self.embed = is_embed_path(request.path)

        def transform_first_chunk(self, status_code: int, headers: HTTPHeaders, chunk: bytes,
                                  finishing: bool):
            # added, not replaced: a handler's own policy, if any, is enforced as well
            if self.embed:
                headers.add(CSP, embed)
            else:
                headers.add(CSP, "frame-ancestors 'self'")
                headers["X-Frame-Options"] = "SAMEORIGIN"
            return status_code, headers, chunk

    return FramePolicy

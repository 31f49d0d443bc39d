"""The HTTP site: request bodies capped before they are buffered, tokens kept out of logs."""

from __future__ import annotations

from typing import Any

from twisted.web.resource import IResource
from twisted.web.server import Request, Site


class CappedRequest(Request):
    """A request that stops buffering its body past ``max_body`` bytes."""

    max_body = 65536
    too_large = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self.too_large = True
            length = 0  # buffer nothing: the reply is 413 whatever follows
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        if self.content is not None and self.content.tell() + len(data) > self.max_body:
            self.too_large = True
            self.content.seek(0)
            self.content.truncate()
            return
        super().handleContentChunk(data)


def make_site(resource: IResource, max_body: int, *, site_class: type[Site] = Site,
              **kwargs: Any) -> Site:
    """A Site (of ``site_class``) whose requests cap their bodies at ``max_body`` bytes."""
    site = site_class(resource, **kwargs)
    capped: type[Request] = type("Request", (CappedRequest,), {"max_body": max_body})
    site.requestFactory = capped
    return site

"""The status page: what the daemon shows a person in the browser, and as JSON.

Rendered on the server with Jinja2 (autoescape on; no JavaScript build — a few lines of
script only refresh the page), from the journal's shared tables, so every node of a
cluster shows the whole cluster. The daemon mounts it on its endpoint::

    Endpoint(..., pages=StatusPages(Sources(database, plan, node_id, next_fires)).mount)

Pages and every JSON field: docs/status-page.md.
"""

from ._pages import StatusPages
from ._sources import NextFires, NotFound, Sources

__all__ = ["NextFires", "NotFound", "Sources", "StatusPages"]

"""The whole console on serve's app: the frame (app.py: login, logout, the identifying middleware), the read-only
pages (pages.py), compare (compare_page.py) and the operator's actions and approvals (operate.py). Kept apart from
app.py, which every page module imports, so that nothing imports back up."""

from __future__ import annotations

from aiohttp import web

from . import compare_page, operate, pages
from .app import Console, add_frame


def mount(app: web.Application, console: Console) -> None:
    """Every console route on `app`, behind the frame's middleware."""
    add_frame(app, console)
    app.add_routes(pages.routes(console))
    app.add_routes(compare_page.routes(console))
    app.add_routes(operate.routes(console))

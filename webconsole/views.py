"""Rendering: the Jinja2 environment of the console's templates, and pages rendered with what each needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from webconsole.auth import CSRF_FIELD, current_session
from webconsole.queries import duration, timeline

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATES = web.AppKey("templates", jinja2.Environment)


def template_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=jinja2.select_autoescape(("html",)),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""
    env.globals["duration"] = duration
    env.globals["timeline"] = timeline
    return env


def render(request: web.Request, name: str, **values: Any) -> str:
    """A template, with what every page needs: the session's CSRF token and the page's path."""
    session = current_session(request)
    return (
        request.app[TEMPLATES]
        .get_template(name)
        .render(csrf=session.csrf, csrf_field=CSRF_FIELD, path=request.path, **values)
    )


def page(request: web.Request, name: str, **values: Any) -> web.Response:
    return web.Response(text=render(request, name, **values), content_type="text/html")

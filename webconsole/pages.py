"""The operator's pages: runs (live), a run (live), events, schedules, threads, media and chains; login and logout.
Retry and cancel reuse `bot.workflows.runs`, the details `bot.workflows.inspect`."""

from __future__ import annotations

import json
import secrets
from urllib.parse import urlencode

from aiohttp import web

from bot.chains.library import display, load_sources
from bot.workflows.inspect import run_detail
from bot.workflows.models import RUN_STATUSES
from bot.workflows.runs import cancel_run, retry_run
from webconsole import queries
from webconsole.auth import (
    ACCESS_KEY,
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    set_session_cookie,
)
from webconsole.health import RUNTIME
from webconsole.live import fragment_stream
from webconsole.views import TEMPLATES, page, render

PLATFORMS = ("slack", "discord", "console", "web")


def _int(request: web.Request, name: str) -> int:
    value = request.match_info[name]
    if not value.isdigit():
        raise web.HTTPNotFound()
    return int(value)


def _safe_next(value: str) -> str:
    # Only a path on this server: a login link must not send anyone elsewhere.
    # Browsers read a backslash as a slash: "/\\evil.example" would leave too.
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


# Login


async def login_form(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS_KEY]
    token = request.query.get("token", "")
    next_path = _safe_next(request.query.get("next", "/"))
    if token:
        if not access.token_matches(token):
            return _login_page(request, "That login token is not this console's.", next_path, status=403)
        redirect = web.HTTPSeeOther(next_path)
        set_session_cookie(redirect, access.issue(), secure=request.secure)
        raise redirect
    return _login_page(request, "", next_path)


def _login_page(request: web.Request, error: str, next_path: str, status: int = 200) -> web.Response:
    # Before a session there is no session CSRF token: the form carries a random one that must match its cookie.
    csrf = secrets.token_urlsafe(16)
    html = (
        request.app[TEMPLATES]
        .get_template("login.html")
        .render(error=error, csrf=csrf, csrf_field=CSRF_FIELD, next=next_path, path="/login")
    )
    response = web.Response(text=html, content_type="text/html", status=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="Strict", path="/login", max_age=3600)
    return response


async def login_post(request: web.Request) -> web.StreamResponse:
    access = request.app[ACCESS_KEY]
    form = await request.post()
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = str(form.get(CSRF_FIELD, ""))
    next_path = _safe_next(str(form.get("next", "/")))
    if not expected or not secrets.compare_digest(expected, given):
        raise web.HTTPForbidden(text="Missing or wrong CSRF token; reload the login page and try again.")
    if not access.token_matches(str(form.get("token", ""))):
        return _login_page(request, "That login token is not this console's.", next_path, status=403)
    redirect = web.HTTPSeeOther(next_path)
    set_session_cookie(redirect, access.issue(), secure=request.secure)
    redirect.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    raise redirect


async def logout(request: web.Request) -> web.StreamResponse:
    redirect = web.HTTPSeeOther("/login")
    redirect.del_cookie(SESSION_COOKIE, path="/")
    raise redirect


# Runs


async def _runs_table(request: web.Request) -> str:
    wanted = queries.RunFilter.from_query(request.query)
    runs = await queries.list_runs(request.app[RUNTIME], wanted)
    return render(request, "_runs_table.html", runs=runs)


async def runs_page(request: web.Request) -> web.Response:
    wanted = queries.RunFilter.from_query(request.query)
    return page(
        request,
        "runs.html",
        table=await _runs_table(request),
        wanted=wanted,
        live_url="/live/runs?" + urlencode(wanted.as_query()),
        statuses=RUN_STATUSES,
        workflows=await queries.workflow_names(request.app[RUNTIME]),
        platforms=PLATFORMS,
        since=tuple(queries.SINCE),
    )


async def runs_live(request: web.Request) -> web.StreamResponse:
    return await fragment_stream(request, lambda: _runs_table(request), interval_s=1.0)


async def _run_body(request: web.Request, run_id: int) -> str | None:
    runtime = request.app[RUNTIME]
    detail = await run_detail(runtime, run_id)
    if detail is None:
        return None
    extras = await queries.run_extras(runtime, run_id)
    return render(
        request,
        "_run_live.html",
        detail=detail,
        extras=extras,
        pretty=lambda value: json.dumps(value, indent=2, default=str, ensure_ascii=False),
    )


async def run_page(request: web.Request) -> web.Response:
    run_id = _int(request, "run_id")
    body = await _run_body(request, run_id)
    if body is None:
        raise web.HTTPNotFound(text=f"There is no run {run_id}.")
    return page(request, "run.html", run_id=run_id, body=body, live_url=f"/live/runs/{run_id}")


async def run_live(request: web.Request) -> web.StreamResponse:
    run_id = _int(request, "run_id")

    async def body() -> str:
        return await _run_body(request, run_id) or f"<p>Run {run_id} is gone.</p>"

    return await fragment_stream(request, body, interval_s=0.5)


async def run_retry(request: web.Request) -> web.StreamResponse:
    run_id = _int(request, "run_id")
    if not await retry_run(request.app[RUNTIME], run_id):
        raise web.HTTPConflict(text=f"Run {run_id} is not failed or cancelled (or its steps were pruned).")
    raise web.HTTPSeeOther(f"/runs/{run_id}")


async def run_cancel(request: web.Request) -> web.StreamResponse:
    run_id = _int(request, "run_id")
    if not await cancel_run(request.app[RUNTIME], run_id, "cancelled from the web console"):
        raise web.HTTPConflict(text=f"Run {run_id} has already finished.")
    raise web.HTTPSeeOther(f"/runs/{run_id}")


# The other pages


async def _events_table(request: web.Request) -> str:
    name = request.query.get("name", "").strip()
    return render(request, "_events_table.html", events=await queries.list_events(request.app[RUNTIME], name=name))


async def events_page(request: web.Request) -> web.Response:
    name = request.query.get("name", "").strip()
    live = "/live/events?" + urlencode({"name": name} if name else {})
    return page(request, "events.html", table=await _events_table(request), event_name=name, live_url=live)


async def events_live(request: web.Request) -> web.StreamResponse:
    return await fragment_stream(request, lambda: _events_table(request), interval_s=1.0)


async def schedules_page(request: web.Request) -> web.Response:
    found = await queries.list_schedules(request.app[RUNTIME])
    return page(request, "schedules.html", **found)


async def schedule_cancel(request: web.Request) -> web.StreamResponse:
    schedule_id = _int(request, "schedule_id")
    if not await queries.cancel_schedule(request.app[RUNTIME], schedule_id):
        raise web.HTTPConflict(text=f"Schedule {schedule_id} is not active.")
    raise web.HTTPSeeOther("/schedules")


async def threads_page(request: web.Request) -> web.Response:
    platform = request.query.get("platform", "").strip()
    found = await queries.list_threads(request.app[RUNTIME], platform=platform)
    return page(request, "threads.html", threads=found, platform=platform, platforms=PLATFORMS)


async def thread_page(request: web.Request) -> web.Response:
    thread_id = _int(request, "thread_id")
    thread, messages = await queries.thread_messages(request.app[RUNTIME], thread_id)
    if thread is None:
        raise web.HTTPNotFound(text=f"There is no thread {thread_id}.")
    return page(request, "thread.html", thread=thread, messages=messages)


async def media_page(request: web.Request) -> web.Response:
    tag = request.query.get("tag", "").strip()
    return page(request, "media.html", media=await queries.list_media(request.app[RUNTIME], tag=tag), tag=tag)


async def media_item_page(request: web.Request) -> web.Response:
    media_id = _int(request, "media_id")
    item = await queries.media_detail(request.app[RUNTIME], media_id)
    if item is None:
        raise web.HTTPNotFound(text=f"There is no media {media_id}.")
    pretty = json.dumps(item.get("digest"), indent=2, ensure_ascii=False) if item.get("digest") else ""
    return page(request, "media_item.html", item=item, digest=pretty)


async def chains_page(request: web.Request) -> web.Response:
    settings = request.app[RUNTIME].settings
    folder = settings.chains_dir
    library, problems = load_sources([folder] if folder is not None else [])
    return page(
        request,
        "chains.html",
        entries=library.entries(),
        problems=problems,
        folder=str(folder) if folder is not None else "",
        display=display,
    )


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/login", login_form)
    router.add_post("/login", login_post)
    router.add_post("/logout", logout)
    router.add_get("/", runs_page)
    router.add_get("/live/runs", runs_live)
    router.add_get("/runs/{run_id}", run_page)
    router.add_get("/live/runs/{run_id}", run_live)
    router.add_post("/runs/{run_id}/retry", run_retry)
    router.add_post("/runs/{run_id}/cancel", run_cancel)
    router.add_get("/events", events_page)
    router.add_get("/live/events", events_live)
    router.add_get("/schedules", schedules_page)
    router.add_post("/schedules/{schedule_id}/cancel", schedule_cancel)
    router.add_get("/threads", threads_page)
    router.add_get("/threads/{thread_id}", thread_page)
    router.add_get("/media", media_page)
    router.add_get("/media/{media_id}", media_item_page)
    router.add_get("/chains", chains_page)

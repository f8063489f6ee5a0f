"""The playground: the `web` platform in a browser. A message goes through `bot.intake.accept` like a Slack
event; a `/command` through the same command registry as Slack's; the reply comes back from whichever worker
answered, through the thread's Redis stream, which the page follows with server-sent events.

The page's own lines (what the user typed, a command's answer, a refusal) are written into that stream too, before
the message is accepted, so the stream is the whole conversation in order and a reload shows it again."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from typing import Any

from aiohttp import BodyPartReader, web
from redis.exceptions import RedisError

from adapters.console.outbound import as_text, file_key, safe_filename, stream_key
from adapters.web.files import save_upload, uploads_dir
from adapters.web.inbound import new_thread_name, to_command, to_event, valid_thread_name, web_thread
from bot.catalog import COMMANDS
from bot.commands import normalise_name
from bot.errors import UserFacingError
from bot.events import FileRef
from bot.intake import accept
from bot.runtime import Runtime
from webconsole import queries
from webconsole.health import RUNTIME
from webconsole.live import STOPPING, open_stream, pause, send_json
from webconsole.views import page

USER = "operator"  # who types in the playground: the one person holding the login token
_MAXLEN = 10000
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _thread(value: str) -> str:
    if not valid_thread_name(value):
        raise web.HTTPBadRequest(text="A thread name is 1-64 letters, digits, '.', '_' or '-'.")
    return value


async def _note(runtime: Runtime, thread: str, op: str, text: str, **extra: str) -> str:
    entry_id = f"{op}-{uuid.uuid4().hex}"
    fields: dict[Any, Any] = {"op": op, "id": entry_id, "text": text, **extra}
    await runtime.redis.xadd(stream_key(web_thread(thread)), fields, maxlen=_MAXLEN)
    return entry_id


async def playground_page(request: web.Request) -> web.StreamResponse:
    thread = request.query.get("thread", "")
    if not thread:
        raise web.HTTPSeeOther(f"/playground?thread={new_thread_name()}")
    threads = await queries.web_threads(request.app[RUNTIME])
    return page(request, "playground.html", thread=_thread(thread), threads=threads)


async def send(request: web.Request) -> web.Response:
    """A line from the page: a message for the bot, or a /command. Answers JSON with what became of it."""
    runtime = request.app[RUNTIME]
    form = await request.post()
    thread = _thread(str(form.get("thread", "")))
    text = str(form.get("text", "")).strip()
    if not text:
        raise web.HTTPBadRequest(text="Type a message first.")
    if text.startswith("/") and normalise_name(text.split(" ", 1)[0]) in COMMANDS:
        await _note(runtime, thread, "user", text)
        reply = await COMMANDS.handle(runtime, to_command(text, thread, user=USER))
        await _note(runtime, thread, "notice", reply.text)
        return web.json_response({"command": True, "accepted": reply.accepted, "text": reply.text})
    return await _accept(runtime, thread, text, ())


async def _accept(runtime: Runtime, thread: str, text: str, files: tuple[FileRef, ...]) -> web.Response:
    event = to_event(text, thread, user=USER, files=files)
    user_entry = await _note(runtime, thread, "user", str(event.text))
    try:
        accepted = await accept(runtime, event)
    except UserFacingError as exc:
        await _note(runtime, thread, "notice", exc.user_message)
        return web.json_response({"accepted": False, "text": exc.user_message}, status=422)
    await _note(runtime, thread, "run", "", of=user_entry, run=str(accepted.run_id), message=str(accepted.message_id))
    return web.json_response(
        {"accepted": True, "message_id": accepted.message_id, "run_id": accepted.run_id, "entry": user_entry}
    )


async def upload(request: web.Request) -> web.Response:
    """A file dropped on the page (multipart: `thread`, optional `text`, then `file`), streamed to disk and shared
    with the bot as a Slack file would be: it goes through the media flow."""
    runtime = request.app[RUNTIME]
    reader = await request.multipart()
    values: dict[str, str] = {}
    ref: FileRef | None = None
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file" and part.filename:
            thread = _thread(values.get("thread", ""))
            try:
                ref = await save_upload(
                    uploads_dir(runtime.settings.data_dir),
                    part.filename,
                    _chunks(part),
                    max_bytes=runtime.settings.max_file_bytes,
                )
            except UserFacingError as exc:
                await _note(runtime, thread, "notice", exc.user_message)
                return web.json_response({"accepted": False, "text": exc.user_message}, status=422)
        elif part.name in ("thread", "text"):
            values[part.name] = (await part.text()).strip()
    if ref is None:
        raise web.HTTPBadRequest(text="No file in the upload.")
    return await _accept(runtime, _thread(values.get("thread", "")), values.get("text", ""), (ref,))


async def _chunks(part: BodyPartReader) -> Any:
    while chunk := await part.read_chunk(1 << 20):
        yield chunk


async def stream(request: web.Request) -> web.StreamResponse:
    """The thread's stream as server-sent events, from the start (or after Last-Event-ID, on a reconnect)."""
    runtime = request.app[RUNTIME]
    thread = _thread(request.query.get("thread", ""))
    key = stream_key(web_thread(thread))
    last = request.headers.get("Last-Event-ID", "")
    cursor = last if _STREAM_ID.match(last) else "0-0"
    response = await open_stream(request)
    try:
        while True:
            try:
                batches = await runtime.redis.xread({key: cursor}, count=200, block=1000)
            except (OSError, RedisError):
                if not await pause(request, 1.0):
                    break
                continue
            for _, entries in batches or []:
                for entry_id, fields in entries:
                    cursor = as_text(entry_id)
                    payload = {as_text(k): as_text(v) for k, v in fields.items() if as_text(k) != "key"}
                    if "file" in payload:
                        payload["url"] = f"/playground/files/{payload['id']}/{safe_filename(payload['file'])}"
                    await send_json(response, payload.pop("op", "post"), payload, cursor)
            if not batches:
                await response.write(b": idle\n\n")  # a heartbeat; also finds a browser that left
            if request.app[STOPPING].is_set():
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


async def file_download(request: web.Request) -> web.StreamResponse:
    """A file the bot posted in a playground thread (a transcript), from Redis where the outbound left it."""
    runtime = request.app[RUNTIME]
    content: bytes | None = None
    with contextlib.suppress(OSError, RedisError):
        content = await runtime.redis.get(file_key(request.match_info["message_id"]))
    if content is None:
        raise web.HTTPNotFound(text="That file is no longer kept.")
    name = safe_filename(request.match_info["name"]).replace('"', "_")
    return web.Response(
        body=content,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/playground", playground_page)
    app.router.add_post("/playground/send", send)
    app.router.add_post("/playground/upload", upload)
    app.router.add_get("/playground/stream", stream)
    app.router.add_get("/playground/files/{message_id}/{name}", file_download)

"""Local Slack Web API server over real HTTP: the sandbox the Slack adapter is tested against.

It keeps channels and threads in memory, records every call, serves private files only to the bot token, can be
scripted to answer 429 (with Retry-After) or an error such as msg_too_long, and offers `apps.connections.open`
with a local websocket so Socket Mode can be driven end to end. Uploads follow files_upload_v2: an upload URL on
this server, the bytes POSTed to it, then files.completeUploadExternal shares the file into a channel or thread as a
message with `files`; as on Slack the share is made asynchronously (`share_delay_s`) and its response lists no
shares yet, while files.info does once it is made.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from sandbox.serving import LocalServer

__all__ = ["Failure", "SandboxFile", "SlackCall", "SlackSandbox"]

BOT_USER_ID = "UBOT0001"
BOT_ID = "BBOT0001"
TEAM_ID = "T0SANDBOX"
# Slack refuses message text far above 4,000 characters with msg_too_long; the sandbox draws the line here.
MAX_TEXT_CHARS = 4000


@dataclass
class SlackCall:
    method: str
    args: dict[str, Any]
    token: str
    at: float


@dataclass
class Failure:
    """One scripted failure, consumed by the next call of `method`."""

    method: str
    error: str = "ratelimited"
    status: int = 200
    retry_after: int | None = None
    # True: Slack did the work, then the answer was lost (a 5xx or a dropped connection after the fact).
    after_acting: bool = False


@dataclass
class SandboxFile:
    file_id: str
    name: str
    content: bytes
    mime_type: str = "application/octet-stream"
    channel: str = ""
    thread_ts: str = ""
    title: str = ""
    # False between files.getUploadURLExternal and files.completeUploadExternal: Slack does not know it yet.
    completed: bool = True
    # files.info's `shares`: {"public" | "private": {channel: [{"ts", "thread_ts"?}]}}
    shares: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.file_id,
            "name": self.name,
            "title": self.title or self.name,
            "size": len(self.content),
            "mimetype": self.mime_type,
            "shares": self.shares,
        }


@dataclass
class SandboxMessage:
    ts: str
    channel: str
    text: str
    thread_ts: str | None = None
    user: str = BOT_USER_ID
    bot_id: str | None = BOT_ID
    metadata: dict[str, Any] | None = None
    streaming: bool = False
    edits: int = 0
    files: list[str] = field(default_factory=list)
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self, *, with_metadata: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text, "user": self.user}
        if self.bot_id:
            body["bot_id"] = self.bot_id
        if self.thread_ts:
            body["thread_ts"] = self.thread_ts
        if with_metadata and self.metadata:
            body["metadata"] = self.metadata
        if self.blocks:
            body["blocks"] = self.blocks
        if self.files:
            body["files"] = [{"id": file_id} for file_id in self.files]
            body["upload"] = True
        return body


class SlackSandbox(LocalServer):
    """Speaks the Web API methods the bot uses. Start with `async with SlackSandbox() as slack:`."""

    def __init__(self, *, bot_token: str = "xoxb-sandbox", app_token: str = "xapp-sandbox") -> None:  # noqa: S107
        super().__init__()
        self.bot_token = bot_token
        self.app_token = app_token
        # Tokens handed out by oauth.v2.access are valid too, each for its own workspace.
        self.installed: dict[str, str] = {}
        self._caller = ""
        self.calls: list[SlackCall] = []
        self.messages: list[SandboxMessage] = []
        self.files: dict[str, SandboxFile] = {}
        self.responses: list[dict[str, Any]] = []  # what was POSTed to response_url
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_connections = 0
        self._failures: deque[Failure] = deque()
        self._ts = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_ready = asyncio.Event()
        # How long after files.completeUploadExternal the share message appears (Slack scans the file first).
        self.share_delay_s = 0.0

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_get("/files-pri/{team_file}/{name}", self._download)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/respond/{key}", self._respond)
        app.router.add_get("/socket", self._socket)
        return app

    async def before_stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    @property
    def base_url(self) -> str:
        """Root of the server, e.g. http://127.0.0.1:PORT"""
        return f"http://{self.host}:{self.bound_port}"

    @property
    def api_url(self) -> str:
        """What SLACK_API_URL should be set to."""
        return f"{self.base_url}/api/"

    # -- scripting and inspection ----------------------------------------------------------------------------------

    def fail(self, *failures: Failure) -> None:
        self._failures.extend(failures)

    def add_file(self, name: str, content: bytes, mime_type: str = "text/plain") -> SandboxFile:
        file = SandboxFile(file_id=f"F{next(self._file_ids):07d}", name=name, content=content, mime_type=mime_type)
        self.files[file.file_id] = file
        return file

    def download_url(self, file: SandboxFile) -> str:
        return f"{self.base_url}/files-pri/{TEAM_ID}-{file.file_id}/{file.name}"

    def response_url(self, key: str) -> str:
        return f"{self.base_url}/respond/{key}"

    def calls_to(self, method: str) -> list[SlackCall]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[SandboxMessage]:
        """The bot's messages in a thread, as a user sees them now (edits applied), oldest first."""
        return [m for m in self.messages if m.channel == channel and m.thread_ts == thread_ts]

    async def push_socket_event(self, envelope: dict[str, Any], timeout_s: float = 10.0) -> None:
        """Send an envelope to the connected Socket Mode client (waits for a connection first)."""
        await asyncio.wait_for(self._socket_ready.wait(), timeout_s)
        await self._sockets[-1].send_str(json.dumps(envelope))

    # -- HTTP handlers ---------------------------------------------------------------------------------------------

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    args.update(body)
            else:
                args.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        return args

    @staticmethod
    def _token(request: web.Request, args: dict[str, Any]) -> str:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header.removeprefix("Bearer ")
        return str(args.get("token", ""))

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        token = self._token(request, args)
        self.calls.append(SlackCall(method, {k: v for k, v in args.items() if k != "token"}, token, time.monotonic()))
        if method == "oauth.v2.access":
            token = self._client_credentials(request, args)
        wanted = {self.app_token} if method == "apps.connections.open" else self.bot_tokens
        if token not in wanted:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        for failure in list(self._failures):
            if failure.method == method:
                self._failures.remove(failure)
                handler = _METHODS.get(method)
                if failure.after_acting and handler is not None:
                    self._caller = token
                    handler(self, args)
                headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else None
                status = 429 if failure.error == "ratelimited" and failure.status == 200 else failure.status
                return web.json_response({"ok": False, "error": failure.error}, status=status, headers=headers)
        handler = _METHODS.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        self._caller = token
        try:
            result = handler(self, args)
        except _SlackError as exc:
            return web.json_response({"ok": False, "error": str(exc)})
        return web.json_response({"ok": True, **result})

    @property
    def bot_tokens(self) -> set[str]:
        return {self.bot_token, *self.installed.values()}

    def _client_credentials(self, request: web.Request, args: dict[str, Any]) -> str:
        """oauth.v2.access authenticates the app (HTTP Basic client id/secret), not a bot; any pair is accepted."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic ") or args.get("client_secret"):
            return self.bot_token
        return ""

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.bot_tokens:
            # Slack answers an unauthenticated file URL with its HTML login page, not with a 401.
            return web.Response(text="<html>sign in</html>", content_type="text/html")
        file = self.files.get(request.match_info["team_file"].rpartition("-")[2])
        if file is None:
            return web.Response(status=404)
        return web.Response(body=file.content, content_type=file.mime_type)

    async def _upload(self, request: web.Request) -> web.Response:
        file = self.files.get(request.match_info["file_id"])
        if file is None or file.completed:
            return web.Response(status=404)  # an upload URL serves one upload, until it is completed
        # files_upload_v2 POSTs the raw bytes to the URL files.getUploadURLExternal handed out.
        file.content = await request.read()
        return web.Response(text=f"OK - {len(file.content)}")

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append({"key": request.match_info["key"], **(await request.json())})
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        await ws.send_str(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}}))
        self._socket_ready.set()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(message.data))
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self._socket_ready.clear()
        return ws

    # -- Web API methods -------------------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.000100"

    def _find(self, channel: str, ts: str) -> SandboxMessage:
        for message in self.messages:
            if message.channel == channel and message.ts == ts:
                return message
        raise _SlackError("message_not_found")

    @staticmethod
    def _check_text(text: str) -> None:
        if len(text) > MAX_TEXT_CHARS:
            raise _SlackError("msg_too_long")

    def auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"{self.base_url}/",
            "team": "Sandbox",
            "user": "threadbot",
            "team_id": next((team for team, t in self.installed.items() if t == self._caller), TEAM_ID),
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        text = str(args.get("text", ""))
        self._check_text(text)
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        message = SandboxMessage(
            ts=self._next_ts(),
            channel=str(args["channel"]),
            text=text,
            thread_ts=str(args["thread_ts"]) if args.get("thread_ts") else None,
            metadata=metadata,
        )
        self.messages.append(message)
        return {"channel": message.channel, "ts": message.ts, "message": message.as_json(with_metadata=True)}

    def update(self, args: dict[str, Any]) -> dict[str, Any]:
        text = str(args.get("text", ""))
        self._check_text(text)
        message = self._find(str(args["channel"]), str(args["ts"]))
        message.text = text
        message.edits += 1
        return {"channel": message.channel, "ts": message.ts, "text": text}

    def delete(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._find(str(args["channel"]), str(args["ts"]))
        self.messages.remove(message)
        return {"channel": message.channel, "ts": message.ts}

    def post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"message_ts": self._next_ts()}

    def start_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        message = SandboxMessage(
            ts=self._next_ts(),
            channel=str(args["channel"]),
            text=_chunk_text(args),
            thread_ts=str(args["thread_ts"]),
            streaming=True,
        )
        self.messages.append(message)
        return {"channel": message.channel, "ts": message.ts}

    def append_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._find(str(args["channel"]), str(args["ts"]))
        if not message.streaming:
            raise _SlackError("message_not_in_streaming_state")
        message.text += _chunk_text(args)
        return {"channel": message.channel, "ts": message.ts}

    def stop_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.append_stream(args)
        found = self._find(message["channel"], message["ts"])
        found.streaming = False
        metadata = args.get("metadata")
        found.metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        return {"channel": found.channel, "ts": found.ts, "message": found.as_json(with_metadata=True)}

    def replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args["channel"]), str(args["ts"])
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        found = [m for m in self.messages if m.channel == channel and (m.ts == ts or m.thread_ts == ts)]
        return {"messages": [m.as_json(with_metadata=with_metadata) for m in found], "has_more": False}

    def recorded(self, args: dict[str, Any]) -> dict[str, Any]:
        return {}

    def get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not str(args.get("length", "")).isdigit():
            raise _SlackError("invalid_arguments")
        file = self.add_file(str(args["filename"]), b"")
        file.completed = False
        return {"upload_url": f"{self.base_url}/upload/{file.file_id}", "file_id": file.file_id}

    def complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = args["files"]
        entries = json.loads(entries) if isinstance(entries, str) else entries
        blocks = args.get("blocks") or []
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        done = []
        for entry in entries:
            file = self.files.get(entry["id"])
            if file is None or file.completed:
                raise _SlackError("file_not_found")
            file.completed = True
            file.title = entry.get("title") or file.name
            file.channel = str(args.get("channel_id", ""))
            file.thread_ts = str(args.get("thread_ts", ""))
            # Slack answers before the share is made: the files it returns list no shares yet.
            done.append({**file.as_json(), "shares": {}})
            if file.channel:
                comment = str(args.get("initial_comment") or "")
                message = SandboxMessage(
                    ts=self._next_ts(),
                    channel=file.channel,
                    # Slack ignores blocks when there is an initial comment.
                    text=comment or _blocks_text(blocks),
                    thread_ts=file.thread_ts or None,
                    files=[file.file_id],
                    blocks=[] if comment else blocks,
                )
                if self.share_delay_s > 0:
                    asyncio.get_running_loop().call_later(self.share_delay_s, self._share, file, message)
                else:
                    self._share(file, message)
        return {"files": done}

    def _share(self, file: SandboxFile, message: SandboxMessage) -> None:
        self.messages.append(message)
        scope = "public" if message.channel.startswith("C") else "private"
        share: dict[str, Any] = {"ts": message.ts}
        if message.thread_ts:
            share["thread_ts"] = message.thread_ts
        file.shares.setdefault(scope, {}).setdefault(message.channel, []).append(share)

    def file_info(self, args: dict[str, Any]) -> dict[str, Any]:
        file = self.files.get(str(args.get("file", "")))
        if file is None or not file.completed:
            raise _SlackError("file_not_found")
        return {"file": file.as_json()}

    def oauth_access(self, args: dict[str, Any]) -> dict[str, Any]:
        """The code names the workspace: `code-T0OTHER` installs the app in T0OTHER with a fresh bot token."""
        code = str(args.get("code", ""))
        if not code.startswith("code-"):
            raise _SlackError("invalid_code")
        team = code.removeprefix("code-")
        token = f"xoxb-{team}-{next(self._ts)}"
        self.installed[team] = token
        return {
            "access_token": token,
            "token_type": "bot",
            "scope": "chat:write,commands",
            "bot_user_id": BOT_USER_ID,
            "app_id": "A0THREADBOT",
            "team": {"id": team, "name": f"Team {team}"},
            "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": {"id": "U0INSTALLER"},
        }

    def connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"ws://{self.host}:{self.bound_port}/socket"}


class _SlackError(Exception):
    pass


def _blocks_text(blocks: list[dict[str, Any]]) -> str:
    """What a person reads in section blocks: their texts, one per line."""
    return "\n".join(str((b.get("text") or {}).get("text", "")) for b in blocks if b.get("type") == "section")


def _chunk_text(args: dict[str, Any]) -> str:
    text = str(args.get("markdown_text") or "")
    chunks = args.get("chunks") or []
    if isinstance(chunks, str):
        chunks = json.loads(chunks)
    return text + "".join(str(c.get("text", "")) for c in chunks if c.get("type") == "markdown_text")


_METHODS = {
    "auth.test": SlackSandbox.auth_test,
    "chat.postMessage": SlackSandbox.post_message,
    "chat.update": SlackSandbox.update,
    "chat.delete": SlackSandbox.delete,
    "chat.postEphemeral": SlackSandbox.post_ephemeral,
    "chat.startStream": SlackSandbox.start_stream,
    "chat.appendStream": SlackSandbox.append_stream,
    "chat.stopStream": SlackSandbox.stop_stream,
    "conversations.replies": SlackSandbox.replies,
    "assistant.threads.setStatus": SlackSandbox.recorded,
    "assistant.threads.setSuggestedPrompts": SlackSandbox.recorded,
    "files.getUploadURLExternal": SlackSandbox.get_upload_url,
    "files.completeUploadExternal": SlackSandbox.complete_upload,
    "files.info": SlackSandbox.file_info,
    "apps.connections.open": SlackSandbox.connections_open,
    "oauth.v2.access": SlackSandbox.oauth_access,
}

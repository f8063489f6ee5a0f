"""Local Discord: the REST API and the gateway websocket over real HTTP, for the demo and the tests.

Speaks enough of Discord's API v10 for discord.py's own client (login, gateway HELLO/IDENTIFY/READY/GUILD_CREATE,
heartbeats, MESSAGE_CREATE, THREAD_CREATE, INTERACTION_CREATE) and for the bot's REST outbound (messages with
`nonce` + `enforce_nonce`, as JSON or as a multipart form with `payload_json` and `files[n]` attachments served
back from `/attachments/`, edits, threads from messages, typing, interaction callbacks and follow-ups, command
overwrites). Faults are scriptable: 429 with `retry_after` (per route or global) and 403 missing permissions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import signal
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

from sandbox.serving import LocalServer

__all__ = ["FakeDiscord", "Fault", "RecordedCall"]

DISCORD_EPOCH_MS = 1_420_070_400_000
HEARTBEAT_INTERVAL_MS = 41_250
# How long Discord remembers a nonce for `enforce_nonce` ("a few minutes").
NONCE_WINDOW_S = 300.0
EPHEMERAL = 1 << 6
# Per attachment, for a bot in a server without boosts; the whole request may not exceed Discord's own cap.
UPLOAD_LIMIT_BYTES = 10 * 1024 * 1024
MAX_REQUEST_BYTES = 25 * 1024 * 1024

Json = dict[str, Any]
Action = Literal["send", "thread", "attach"]


@dataclass
class Fault:
    """A scripted failure for the next request(s) whose `METHOD path` matches `pattern` (a regex)."""

    pattern: str
    status: int = 429
    retry_after: float = 0.2
    global_: bool = False
    times: int = 1
    # True: Discord did the work, then the answer was lost (a 5xx after the fact).
    after_acting: bool = False


@dataclass
class RecordedCall:
    method: str
    path: str
    body: Any
    at: float
    status: int = 0
    # A multipart send's files, by form field: (filename, size). Its `payload_json` is the `body`.
    files: dict[str, tuple[str, int]] = field(default_factory=dict)


@dataclass
class _Message:
    payload: Json
    edits: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.monotonic)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": discord.py parses a body only under that content type, without a charset.
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={**(headers or {}), "Content-Type": "application/json"}
    )


def error_json(status: int, code: int, message: str) -> web.Response:
    return json_response({"code": code, "message": message}, status=status)


def fault_response(fault: Fault) -> web.Response:
    if fault.status != 429:
        return error_json(fault.status, 0, f"scripted {fault.status}")
    headers = {
        "Retry-After": str(max(1, round(fault.retry_after))),
        "X-RateLimit-Scope": "global" if fault.global_ else "user",
    }
    if fault.global_:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": fault.retry_after, "global": fault.global_}
    return json_response(body, status=429, headers=headers)


class FakeDiscord(LocalServer):
    """A Discord on localhost: one bot user, guilds with text channels, DMs, threads and a live gateway."""

    # discord.py's client does not hang up on slow answers; no handler needs cancelling.
    handler_cancellation = False

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, token: str = "sandbox-token") -> None:  # noqa: S107
        super().__init__(host=host, port=port)
        self.token = token
        self._ids = itertools.count(1)
        self.application_id = self.snowflake()
        self.bot_user = self.user_payload("threadbot", bot=True, user_id=self.application_id)
        self.guilds: dict[str, Json] = {}
        self.channels: dict[str, Json] = {}
        self.messages: dict[str, list[_Message]] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.calls: list[RecordedCall] = []
        self.interaction_callbacks: list[tuple[float, Json]] = []
        self.followups: list[Json] = []
        self.commands: dict[str, list[Json]] = {}
        self.forbidden: set[tuple[str, Action]] = set()
        self.identified = asyncio.Event()
        self.intents: int | None = None
        self._faults: deque[Fault] = deque()
        self._exhausted: list[tuple[str, float]] = []
        self._users: dict[str, Json] = {}
        self._sockets: list[tuple[web.WebSocketResponse, list[int]]] = []

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_fault], client_max_size=MAX_REQUEST_BYTES)
        api = "/api/v10"
        routes = [
            ("GET", "/users/@me", self._me),
            ("GET", "/oauth2/applications/@me", self._application),
            ("GET", "/gateway", self._gateway_info),
            ("GET", "/gateway/bot", self._gateway_info),
            ("POST", "/channels/{channel}/messages", self._create_message),
            ("GET", "/channels/{channel}/messages", self._list_messages),
            ("GET", "/channels/{channel}/messages/{message}", self._get_message),
            ("PATCH", "/channels/{channel}/messages/{message}", self._edit_message),
            ("POST", "/channels/{channel}/messages/{message}/threads", self._start_thread),
            ("POST", "/channels/{channel}/typing", self._typing),
            ("POST", "/interactions/{interaction}/{token}/callback", self._interaction_callback),
            ("POST", "/webhooks/{application}/{token}", self._followup),
            ("PATCH", "/webhooks/{application}/{token}/messages/@original", self._edit_original),
            ("PUT", "/applications/{application}/commands", self._overwrite_commands),
            ("PUT", "/applications/{application}/guilds/{guild}/commands", self._overwrite_commands),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, api + path, handler)
        app.router.add_get("/attachments/{file}/{name}", self._attachment)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_post("/_sandbox/message", self._control_message)
        app.router.add_get("/_sandbox/channels/{channel}", self._control_channel)
        return app

    async def before_stop(self) -> None:
        for ws, _ in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.bound_port}"

    @property
    def api_base(self) -> str:
        return f"{self.origin}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.bound_port}/gateway"

    # -- the world: ids, users, guilds, channels ------------------------------------------------------------------

    def snowflake(self) -> str:
        # Real snowflakes carry their creation time, which discord.py reads back as `created_at`.
        return str(((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | next(self._ids) % 4096)

    def user_payload(self, name: str, *, bot: bool = False, user_id: str | None = None) -> Json:
        return {
            "id": user_id or self.snowflake(),
            "username": name,
            "global_name": name,
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
            "flags": 0,
            "public_flags": 0,
        }

    def add_guild(self, name: str, *, roles: tuple[str, ...] = ()) -> str:
        guild_id = self.snowflake()
        everyone = self._role(guild_id, "@everyone", 0)
        self.guilds[guild_id] = {
            "id": guild_id,
            "name": name,
            "roles": [everyone, *(self._role(self.snowflake(), r, i + 1) for i, r in enumerate(roles))],
        }
        return guild_id

    def role_id(self, guild_id: str, name: str) -> str:
        return next(str(r["id"]) for r in self.guilds[guild_id]["roles"] if r["name"] == name)

    @staticmethod
    def _role(role_id: str, name: str, position: int) -> Json:
        return {
            "id": role_id,
            "name": name,
            "permissions": "0",
            "position": position,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }

    def add_channel(self, guild_id: str, name: str, *, channel_type: int = 0) -> str:
        """A guild channel: type 0 is a text channel (threads allowed), 2 a voice channel's text chat (none)."""
        channel_id = self.snowflake()
        self.channels[channel_id] = {
            "id": channel_id,
            "type": channel_type,
            "guild_id": guild_id,
            "name": name,
            "position": len(self.channels),
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "bitrate": 64000,
            "user_limit": 0,
        }
        self.messages[channel_id] = []
        return channel_id

    def add_dm(self, user: Json) -> str:
        channel_id = self.snowflake()
        self.channels[channel_id] = {"id": channel_id, "type": 1, "recipients": [user], "last_message_id": None}
        self.messages[channel_id] = []
        return channel_id

    def add_file(self, name: str, data: bytes, content_type: str, *, size: int | None = None) -> Json:
        """An attachment payload served from this server; `size` may claim more than the bytes (a big upload)."""
        file_id = self.snowflake()
        self.files[file_id] = (data, content_type)
        url = f"{self.origin}/attachments/{file_id}/{name}"
        return {
            "id": file_id,
            "filename": name,
            "size": len(data) if size is None else size,
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }

    # -- scripting and inspection --------------------------------------------------------------------------------

    def fail(self, fault: Fault) -> None:
        self._faults.append(fault)

    def exhaust_bucket(self, pattern: str, reset_after: float) -> None:
        """Successful answers to `METHOD path` matching `pattern` say the route's bucket is empty for `reset_after`
        seconds (X-RateLimit-Remaining: 0), as Discord does before it would answer 429."""
        self._exhausted.append((pattern, reset_after))

    def forbid(self, channel_id: str, action: Action) -> None:
        """Take a permission away from the bot in a channel: 'send' messages, start a 'thread' or 'attach' files."""
        self.forbidden.add((channel_id, action))

    def texts(self, channel_id: str) -> list[str]:
        """What a user sees in the channel: each message's current text, oldest first."""
        return [m.payload["content"] for m in self.messages.get(channel_id, [])]

    def bot_texts(self, channel_id: str) -> list[str]:
        return [
            m.payload["content"]
            for m in self.messages.get(channel_id, [])
            if m.payload["author"]["id"] == self.bot_user["id"]
        ]

    def edits(self, channel_id: str) -> list[list[str]]:
        return [m.edits for m in self.messages.get(channel_id, [])]

    def threads_of(self, channel_id: str) -> list[Json]:
        return [c for c in self.channels.values() if c.get("parent_id") == channel_id and c["type"] == 11]

    def calls_to(self, method: str, pattern: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.method == method and re.fullmatch(pattern, c.path)]

    # -- what users do: these arrive at the bot over the gateway -------------------------------------------------

    async def user_message(
        self,
        channel_id: str,
        text: str,
        *,
        author: Json,
        mention_bot: bool = False,
        attachments: tuple[Json, ...] = (),
        roles: tuple[str, ...] = (),
        message_type: int = 0,
    ) -> Json:
        """`message_type` is Discord's: 0 a plain message, 6 a pin notice, 7 a member join, and so on."""
        channel = self.channels[channel_id]
        content = f"<@{self.bot_user['id']}> {text}" if mention_bot else text
        payload = self._message_payload(channel, content, author, list(attachments))
        payload["type"] = message_type
        payload["mentions"] = [self.bot_user] if mention_bot else []
        if "guild_id" in channel:
            payload["guild_id"] = channel["guild_id"]
            payload["member"] = self._member(roles)
        self.messages[channel_id].append(_Message(payload))
        await self.dispatch("MESSAGE_CREATE", payload)
        return payload

    async def user_edits(self, message: Json, text: str) -> Json:
        """The author edits `message` (what `user_message` returned): Discord sends MESSAGE_UPDATE, whole."""
        payload = {**message, "content": text, "edited_timestamp": now_iso()}
        for kept in self.messages[message["channel_id"]]:
            if kept.payload["id"] == message["id"]:
                kept.payload = payload
        await self.dispatch("MESSAGE_UPDATE", payload)
        return payload

    async def user_deletes(self, message: Json) -> None:
        """The author deletes `message`: Discord sends MESSAGE_DELETE with ids only."""
        channel_id = message["channel_id"]
        self.messages[channel_id] = [m for m in self.messages[channel_id] if m.payload["id"] != message["id"]]
        data = {"id": message["id"], "channel_id": channel_id}
        if "guild_id" in message:
            data["guild_id"] = message["guild_id"]
        await self.dispatch("MESSAGE_DELETE", data)

    async def user_reacts(self, message: Json, emoji: str, *, user: Json) -> None:
        """`user` adds a Unicode `emoji` reaction to `message`: MESSAGE_REACTION_ADD (a redelivery is the same)."""
        data: Json = {
            "user_id": user["id"],
            "channel_id": message["channel_id"],
            "message_id": message["id"],
            "emoji": {"id": None, "name": emoji},
            "message_author_id": message["author"]["id"],
            "burst": False,
            "type": 0,
        }
        if "guild_id" in message:
            data["guild_id"] = message["guild_id"]
            data["member"] = {**self._member(()), "user": user}
        await self.dispatch("MESSAGE_REACTION_ADD", data)

    async def message_command(self, message: Json, name: str, *, user: Json) -> Json:
        """`user` picks `name` from `message`'s Apps menu: a message context-menu interaction (command type 3)."""
        payload = await self.slash_command(message["channel_id"], name, {}, user=user, dispatch=False)
        payload["data"] = {
            "id": self.snowflake(),
            "name": name,
            "type": 3,
            "target_id": message["id"],
            "resolved": {"messages": {message["id"]: message}},
        }
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def slash_command(
        self,
        channel_id: str,
        name: str,
        options: dict[str, str],
        *,
        user: Json,
        roles: tuple[str, ...] = (),
        dispatch: bool = True,
    ) -> Json:
        channel = self.channels[channel_id]
        payload: Json = {
            "id": self.snowflake(),
            "application_id": self.application_id,
            "type": 2,
            "token": f"itoken-{next(self._ids)}",
            "version": 1,
            "channel_id": channel_id,
            "channel": channel,
            "data": {
                "id": self.snowflake(),
                "name": name,
                "type": 1,
                "options": [{"name": k, "type": 3, "value": v} for k, v in options.items()],
            },
            "app_permissions": "0",
            "attachment_size_limit": 10 * 1024 * 1024,
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {},
            "context": 0,
        }
        if "guild_id" in channel:
            payload["guild_id"] = channel["guild_id"]
            payload["guild_locale"] = "en-US"
            payload["member"] = {**self._member(roles), "user": user, "permissions": "0"}
        else:
            payload["user"] = user
        if dispatch:
            await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    def _member(self, roles: tuple[str, ...]) -> Json:
        return {"roles": list(roles), "joined_at": now_iso(), "deaf": False, "mute": False, "flags": 0}

    def _message_payload(self, channel: Json, content: str, author: Json, attachments: list[Json]) -> Json:
        payload: Json = {
            "id": self.snowflake(),
            "channel_id": channel["id"],
            "author": author,
            "content": content,
            "timestamp": now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        return payload

    # -- gateway ----------------------------------------------------------------------------------------------------

    async def dispatch(self, event: str, data: Json) -> None:
        for ws, seq in list(self._sockets):
            seq[0] += 1
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps({"op": 0, "t": event, "s": seq[0], "d": data}))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        seq = [0]
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}, "s": None}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op = frame.get("op")
                if op == 1:  # heartbeat
                    await ws.send_str(json.dumps({"op": 11, "d": None}))
                elif op == 2:  # identify
                    if frame["d"].get("token") != self.token:
                        await ws.close(code=4004, message=b"Authentication failed.")
                        break
                    self.intents = int(frame["d"].get("intents", 0))
                    await self._ready(ws, seq)
                elif op == 6:  # resume: nothing to replay here, just say so
                    seq[0] += 1
                    await ws.send_str(json.dumps({"op": 0, "t": "RESUMED", "s": seq[0], "d": {}}))
                    self._sockets.append((ws, seq))
        finally:
            self._sockets[:] = [(s, q) for s, q in self._sockets if s is not ws]
        return ws

    async def _ready(self, ws: web.WebSocketResponse, seq: list[int]) -> None:
        seq[0] += 1
        ready = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": g, "unavailable": True} for g in self.guilds],
            "session_id": f"session-{next(self._ids)}",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": self.application_id, "flags": 0},
            "private_channels": [],
        }
        await ws.send_str(json.dumps({"op": 0, "t": "READY", "s": seq[0], "d": ready}))
        for guild_id in self.guilds:
            seq[0] += 1
            guild = self._guild_create(guild_id)
            await ws.send_str(json.dumps({"op": 0, "t": "GUILD_CREATE", "s": seq[0], "d": guild}))
        self._sockets.append((ws, seq))
        self.identified.set()

    def _guild_create(self, guild_id: str) -> Json:
        guild = self.guilds[guild_id]
        in_guild = [c for c in self.channels.values() if c.get("guild_id") == guild_id]
        return {
            **guild,
            "icon": None,
            "owner_id": self.snowflake(),
            "channels": [c for c in in_guild if c["type"] != 11],
            "threads": [c for c in in_guild if c["type"] == 11],
            "members": [{**self._member(()), "user": self.bot_user}],
            "member_count": 2,
            "large": False,
            "unavailable": False,
            "features": [],
            "emojis": [],
            "stickers": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "joined_at": now_iso(),
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "premium_tier": 0,
            "nsfw_level": 0,
            "preferred_locale": "en-US",
        }

    # -- REST ---------------------------------------------------------------------------------------------------------

    @web.middleware
    async def _record_and_fault(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/gateway" or request.path.startswith("/_sandbox/"):
            return await handler(request)
        body: Any = None
        files: dict[str, tuple[str, int]] = {}
        if request.content_type == "multipart/form-data":
            # aiohttp keeps the parsed form, so the handler reads it again from the request.
            form = await request.post()
            with contextlib.suppress(ValueError):
                body = _payload_json(form)
            files = {k: (v.filename, _size(v)) for k, v in form.items() if isinstance(v, web.FileField)}
        elif request.can_read_body:
            raw = await request.read()
            with contextlib.suppress(ValueError):
                body = json.loads(raw) if raw else None
        path = request.path.removeprefix("/api/v10")
        call = RecordedCall(request.method, path, body, time.monotonic(), files=files)
        self.calls.append(call)
        fault = self._scripted_fault(request.method, path)
        if fault is None:
            refused = self._unauthorised(request)
        else:
            refused = fault_response(fault)
            if fault.after_acting:
                await handler(request)  # Discord acted; only its answer is lost
        response = refused if refused is not None else await handler(request)
        call.status = response.status
        for pattern, reset_after in self._exhausted:
            if response.status < 400 and re.fullmatch(pattern, f"{request.method} {path}"):
                response.headers["X-RateLimit-Remaining"] = "0"
                response.headers["X-RateLimit-Reset-After"] = f"{reset_after:.3f}"
        return response

    def _unauthorised(self, request: web.Request) -> web.Response | None:
        # Interaction callbacks, follow-up webhooks and CDN files carry their own token in the URL.
        path = request.path
        if not path.startswith("/api/v10") or path.startswith(("/api/v10/interactions/", "/api/v10/webhooks/")):
            return None
        if request.headers.get("Authorization") != f"Bot {self.token}":
            return error_json(401, 0, "401: Unauthorized")
        return None

    def _scripted_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if re.fullmatch(fault.pattern, f"{method} {path}"):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    async def _me(self, request: web.Request) -> web.Response:
        return json_response(self.bot_user)

    async def _application(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "id": self.application_id,
                "name": "threadbot",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.user_payload("owner"),
                "verify_key": "0" * 64,
                "flags": 0,
                "summary": "",
            }
        )

    async def _gateway_info(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    def _channel(self, request: web.Request) -> Json | None:
        return self.channels.get(request.match_info["channel"])

    def _denied(self, channel: Json, action: Action) -> bool:
        return (channel["id"], action) in self.forbidden or (channel.get("parent_id"), action) in self.forbidden

    async def _create_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        if channel is None:
            return error_json(404, 10003, "Unknown Channel")
        if self._denied(channel, "send"):
            return error_json(403, 50013, "Missing Permissions")
        body, uploads = await _message_form(request)
        content = str(body.get("content", ""))
        if len(content) > 2000:
            return error_json(400, 50035, "Invalid Form Body: content must be 2000 or fewer in length.")
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            for existing in self.messages[channel["id"]]:
                same = existing.payload.get("nonce") == str(nonce)
                if same and time.monotonic() - existing.created_at < NONCE_WINDOW_S:
                    return json_response(existing.payload)
        if uploads and self._denied(channel, "attach"):
            return error_json(403, 50013, "Missing Permissions")
        attachments = self._attachments(body, uploads)
        if isinstance(attachments, web.Response):
            return attachments
        payload = self._message_payload(channel, content, self.bot_user, attachments)
        if nonce is not None:
            payload["nonce"] = str(nonce)
        self.messages[channel["id"]].append(_Message(payload))
        return json_response(payload)

    def _attachments(self, body: Json, uploads: dict[str, web.FileField]) -> list[Json] | web.Response:
        """The files `attachments[].id` = n names as `files[n]`, checked first, then served from /attachments/ as
        Discord's CDN serves them."""
        checked = []
        for entry in body.get("attachments") or []:
            upload = uploads.get(f"files[{entry.get('id')}]")
            if upload is None:
                return error_json(400, 50035, "Invalid Form Body: attachments: no file for this id.")
            data = upload.file.read()
            if len(data) > UPLOAD_LIMIT_BYTES:
                return error_json(413, 40005, "Request entity too large")
            checked.append((entry, upload, data))
        attachments = []
        for entry, upload, data in checked:
            attachment = self.add_file(str(entry.get("filename") or upload.filename), data, upload.content_type)
            if entry.get("title"):
                attachment["title"] = str(entry["title"])
            attachments.append(attachment)
        return attachments

    def _find(self, channel_id: str, message_id: str) -> _Message | None:
        return next((m for m in self.messages.get(channel_id, []) if m.payload["id"] == message_id), None)

    async def _list_messages(self, request: web.Request) -> web.Response:
        """A channel's history as Discord pages it: with `after`, the oldest `limit` messages after that id; else
        the newest `limit` (or those before `before`); newest first either way."""
        channel = request.match_info["channel"]
        if channel not in self.channels:
            return error_json(404, 10003, "Unknown Channel")
        try:
            limit = min(max(int(request.query.get("limit", "50")), 1), 100)
            after, before = int(request.query.get("after", "0")), int(request.query.get("before", "0"))
        except ValueError:
            return error_json(400, 50035, "Invalid Form Body")
        found = sorted((m.payload for m in self.messages.get(channel, [])), key=lambda p: int(p["id"]))
        if after:
            page = [p for p in found if int(p["id"]) > after][:limit]
        else:
            page = [p for p in found if not before or int(p["id"]) < before][-limit:]
        return json_response(list(reversed(page)))

    async def _get_message(self, request: web.Request) -> web.Response:
        found = self._find(request.match_info["channel"], request.match_info["message"])
        return json_response(found.payload) if found else error_json(404, 10008, "Unknown Message")

    async def _edit_message(self, request: web.Request) -> web.Response:
        found = self._find(request.match_info["channel"], request.match_info["message"])
        if found is None:
            return error_json(404, 10008, "Unknown Message")
        if found.payload["author"]["id"] != self.bot_user["id"]:
            return error_json(403, 50005, "Cannot edit a message authored by another user")
        content = str((await request.json()).get("content", ""))
        if len(content) > 2000:
            return error_json(400, 50035, "Invalid Form Body: content must be 2000 or fewer in length.")
        found.payload["content"] = content
        found.payload["edited_timestamp"] = now_iso()
        found.edits.append(content)
        return json_response(found.payload)

    async def _start_thread(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        if channel is None:
            return error_json(404, 10003, "Unknown Channel")
        message = self._find(channel["id"], request.match_info["message"])
        if message is None:
            return error_json(404, 10008, "Unknown Message")
        if channel["type"] not in (0, 5):
            return error_json(400, 50024, "Cannot execute action on this channel type")
        if (channel["id"], "thread") in self.forbidden:
            return error_json(403, 50013, "Missing Permissions")
        body = await request.json()
        # A thread started from a message has the message's id.
        thread_id = message.payload["id"]
        if thread_id in self.channels:
            return error_json(400, 160004, "A thread has already been created for this message")
        thread = {
            "id": thread_id,
            "type": 11,
            "guild_id": channel["guild_id"],
            "parent_id": channel["id"],
            "owner_id": self.bot_user["id"],
            "name": str(body.get("name", "thread"))[:100],
            "message_count": 0,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": int(body.get("auto_archive_duration", 1440)),
                "archive_timestamp": now_iso(),
                "locked": False,
            },
        }
        self.channels[thread_id] = thread
        self.messages[thread_id] = []
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return json_response(thread, status=201)

    async def _typing(self, request: web.Request) -> web.Response:
        if self._channel(request) is None:
            return error_json(404, 10003, "Unknown Channel")
        return web.Response(status=204)

    async def _interaction_callback(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.interaction_callbacks.append((time.monotonic(), {**body, **request.match_info}))
        if request.query.get("with_response") not in ("1", "true"):
            return web.Response(status=204)
        flags = int((body.get("data") or {}).get("flags", 0))
        interaction = {
            "id": request.match_info["interaction"],
            "type": 2,
            "response_message_loading": body.get("type") == 5,
            "response_message_ephemeral": bool(flags & EPHEMERAL),
        }
        return json_response({"interaction": interaction, "resource": {"type": body.get("type")}})

    async def _followup(self, request: web.Request) -> web.Response:
        body = await request.json()
        payload = {**self._message_payload({"id": "0"}, str(body.get("content", "")), self.bot_user, []), **body}
        payload["interaction_token"] = request.match_info["token"]
        self.followups.append(payload)
        if request.query.get("wait") == "true":
            return json_response(payload)
        return web.Response(status=204)

    async def _edit_original(self, request: web.Request) -> web.Response:
        body = await request.json()
        payload = {**self._message_payload({"id": "0"}, str(body.get("content", "")), self.bot_user, []), **body}
        payload["interaction_token"] = request.match_info["token"]
        self.followups.append(payload)
        return json_response(payload)

    async def _overwrite_commands(self, request: web.Request) -> web.Response:
        scope = request.match_info.get("guild", "global")
        commands = [
            # Discord answers with every field; a context-menu command has an empty description.
            {"description": "", **c, "id": self.snowflake(), "application_id": self.application_id, "version": "1"}
            for c in await request.json()
        ]
        self.commands[scope] = commands
        return json_response(commands)

    async def _attachment(self, request: web.Request) -> web.StreamResponse:
        found = self.files.get(request.match_info["file"])
        if found is None:
            return web.Response(status=404, text="404: Not Found")
        data, content_type = found
        response = web.StreamResponse(headers={"Content-Type": content_type, "Content-Length": str(len(data))})
        await response.prepare(request)
        for start in range(0, len(data), 64 * 1024):
            await response.write(data[start : start + 64 * 1024])
        await response.write_eof()
        return response

    # -- control, for a person or a process driving the sandbox from outside ------------------------------------

    async def _control_message(self, request: web.Request) -> web.Response:
        """POST {"channel": id, "text": ..., "user": name, "mention": true}: a user says something."""
        body = await request.json()
        channel = str(body.get("channel") or next(iter(self.channels)))
        if channel not in self.channels:
            return error_json(404, 10003, "Unknown Channel")
        author = self._users.setdefault(str(body.get("user", "you")), self.user_payload(str(body.get("user", "you"))))
        payload = await self.user_message(
            channel, str(body["text"]), author=author, mention_bot=body.get("mention", True)
        )
        return json_response(payload)

    async def _control_channel(self, request: web.Request) -> web.Response:
        """GET: what the channel and its threads show, as a person would read them."""
        channel = request.match_info["channel"]
        if channel not in self.channels:
            return error_json(404, 10003, "Unknown Channel")
        threads = {t["id"]: self.texts(t["id"]) for t in self.threads_of(channel)}
        return json_response({"messages": self.texts(channel), "threads": threads})


async def _message_form(request: web.Request) -> tuple[Json, dict[str, web.FileField]]:
    """A send's JSON and its files: a plain JSON body, or a multipart form with `payload_json` and `files[n]`."""
    if request.content_type != "multipart/form-data":
        return await request.json(), {}
    form = await request.post()
    return _payload_json(form) or {}, {k: v for k, v in form.items() if isinstance(v, web.FileField)}


def _payload_json(form: Mapping[str, object]) -> Any:
    # aiohttp hands a part sent as application/json over as bytes (a bytearray), a text/plain one as str.
    value = form.get("payload_json")
    return json.loads(value) if isinstance(value, str | bytes | bytearray) and value else None


def _size(upload: web.FileField) -> int:
    upload.file.seek(0, 2)
    size = upload.file.tell()
    upload.file.seek(0)
    return size


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeDiscord(host=args.host, port=args.port, token=args.token)
    general = fake.add_channel(fake.add_guild("Sandbox"), "general")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with fake:
        print(f"DISCORD_API_BASE={fake.api_base}", flush=True)
        print(f"DISCORD_GATEWAY_URL={fake.gateway_url}", flush=True)
        print(f"DISCORD_TOKEN={fake.token}", flush=True)
        print(
            f'# say something: curl -d \'{{"text": "hello"}}\' {fake.origin}/_sandbox/message\n'
            f"# read #general and its threads: curl {fake.origin}/_sandbox/channels/{general}",
            flush=True,
        )
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.discord_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790, help="0 picks a free port")
    parser.add_argument("--token", default="sandbox-token", help="the bot token the server accepts")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()

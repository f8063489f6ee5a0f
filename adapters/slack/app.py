"""The Bolt app: listeners that normalise Slack payloads and hand them to intake or the command layer.

Slack gets its ack only once a message is stored and queued (process_before_response=True): a crash before that
leaves the event unacked, and Slack delivers it again, where acking first would lose it. Intake takes milliseconds;
what may take longer (a Web API call, which can wait out a 429) runs after the ack, in the background, so the
ack always comes well within Slack's 3 s.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from typing import Any

import structlog
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import PLATFORM, inbound
from adapters.slack.installations import (
    BOT_SCOPES,
    INSTALL_PATH,
    REDIRECT_PATH,
    PostgresInstallationStore,
    RedisOAuthStateStore,
    authorization_url,
)
from adapters.slack.mrkdwn import escape
from adapters.slack.types import MessageEvent, SlashCommandBody
from adapters.slack.webapi import SlackRefused, call, web_client
from bot.catalog import COMMANDS
from bot.commands import normalise_name
from bot.edits import drop_stored_message, update_stored_text
from bot.errors import ConfigurationError, UpstreamError, UserFacingError
from bot.events import IncomingMessage, ThreadRef
from bot.intake import accept
from bot.participation import takes_part
from bot.runtime import Runtime
from bot.stores.messages import thread_of_platform_message
from bot.triggers import ActionKind, MessageAction, reaction_chain, take_action

log = structlog.get_logger(__name__)

SUGGESTED_PROMPTS = (
    {"title": "Summarise", "message": "Summarise this thread in three bullets."},
    {"title": "Explain", "message": "Explain the last message as if I were new to the team."},
    {"title": "Draft a reply", "message": "Draft a short, friendly reply to the last message."},
)
# Every slash command reaches the command layer, which answers an unknown one with the list of known ones: an
# ack with a useful text beats Bolt's 404, which Slack shows as "dispatch_failed".
COMMAND_PATTERN = re.compile(r"^/.+$")
_GREETED_TTL_S = 24 * 3600
# Slack waits 3 s for a slash command's ack; the command layer gets most of it.
COMMAND_BUDGET_S = 2.0
NOT_TAKEN = "Sorry, I couldn't take that just now: a service I depend on is failing. Please send it again in a minute."
# Slack redelivers an event that was not acked (or answered 5xx) three times: immediately, after 1 min and after
# 5 min, numbering them in X-Slack-Retry-Num. Until the last one a failure to store is left to that redelivery.
LAST_SLACK_RETRY = 3
# The message shortcuts' callback ids (manifest.yml).
SUMMARIZE_SHORTCUT = "summarize_thread"
ASK_SHORTCUT = "ask_about_message"


def create_app(runtime: Runtime, *, socket_mode: bool = False) -> AsyncApp:
    """Build the Bolt app on SLACK_API_URL. HTTP mode needs SLACK_SIGNING_SECRET (Bolt refuses unsigned or stale
    requests with 401); Socket Mode is authenticated by its app token instead. With SLACK_CLIENT_ID and
    SLACK_CLIENT_SECRET (HTTP mode) workspaces install the app through OAuth and each one's token comes from
    Postgres; otherwise SLACK_BOT_TOKEN serves the one workspace it belongs to."""
    settings = runtime.settings
    token = settings.slack_bot_token.get_secret_value()
    secret = settings.slack_signing_secret.get_secret_value()
    if not socket_mode and not secret:
        raise ConfigurationError("SLACK_SIGNING_SECRET is not set; HTTP mode needs it to verify Slack's requests")
    if settings.slack_oauth_enabled and not socket_mode:
        app = _oauth_app(runtime, secret)
    elif token:
        app = AsyncApp(
            client=web_client(token, settings.slack_api_url),
            signing_secret=secret or None,
            request_verification_enabled=not socket_mode,
            process_before_response=True,
            raise_error_for_unhandled_request=True,
        )
    else:
        raise ConfigurationError(
            "SLACK_BOT_TOKEN is not set (the bot token, xoxb-..., from your Slack app); for a multi-workspace "
            "install in HTTP mode set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET instead"
        )
    Listeners(runtime).register(app)
    return app


def _oauth_app(runtime: Runtime, secret: str) -> AsyncApp:
    settings = runtime.settings
    store = PostgresInstallationStore(runtime.engine)
    app = AsyncApp(
        client=web_client(None, settings.slack_api_url),
        signing_secret=secret,
        installation_store=store,
        installation_store_bot_only=True,
        oauth_settings=AsyncOAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            scopes=list(BOT_SCOPES),
            installation_store=store,
            installation_store_bot_only=True,
            state_store=RedisOAuthStateStore(runtime.redis),
            install_path=INSTALL_PATH,
            redirect_uri_path=REDIRECT_PATH,
            authorization_url=authorization_url(settings.slack_api_url),
            # /slack/install sends the browser straight to Slack's consent page.
            install_page_rendering_enabled=False,
        ),
        process_before_response=True,
        raise_error_for_unhandled_request=True,
    )
    # app_uninstalled / tokens_revoked delete the workspace's installation row.
    app.enable_token_revocation_listeners()
    return app


class Listeners:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        # Work started after the ack; held here so the tasks are not garbage-collected while they run.
        self._after_ack: set[asyncio.Task[None]] = set()

    def after_ack(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` once the listener has returned (and Slack has its ack); a failure is logged, never raised."""

        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("slack follow-up after the ack failed", what=what)

        task = asyncio.create_task(run())
        self._after_ack.add(task)
        task.add_done_callback(self._after_ack.discard)

    def register(self, app: AsyncApp) -> None:
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)
        app.event("assistant_thread_started")(self.on_assistant_thread_started)
        # Acked and ignored: without a listener Bolt answers 404 and Slack would retry the delivery.
        app.event("assistant_thread_context_changed")(self.ignore)
        app.command(COMMAND_PATTERN)(self.on_command)
        app.event("reaction_added")(self.on_reaction)
        app.event("reaction_removed")(self.ignore)
        app.shortcut(SUMMARIZE_SHORTCUT)(self.on_shortcut)
        app.shortcut(ASK_SHORTCUT)(self.on_shortcut)
        app.error(self.on_error)

    async def ignore(self) -> None:
        return None

    async def on_error(self, error: Exception, body: dict[str, Any]) -> BoltResponse | None:
        """Every listener's failure ends here. A malformed payload would come back from Slack just as it is, and a
        request nothing listens to (Bolt's 404) would be redelivered too: both are acked with one line. Anything
        else (Postgres down) stays a 500, so Slack delivers it again and nothing is lost."""
        if isinstance(error, inbound.MalformedPayload):
            log.warning("slack payload malformed; acked and dropped", reason=str(error), type=_kind(body))
            return BoltResponse(status=200, body="")
        if isinstance(error, BoltUnhandledRequestError):
            log.warning("slack request not handled by any listener; acked", type=_kind(body))
            return BoltResponse(status=200, body="")
        log.error("slack listener failed", error=repr(error), type=_kind(body))
        return None

    # -- messages ----------------------------------------------------------------------------------------------

    async def on_mention(
        self, body: dict[str, Any], event: MessageEvent, context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        inbound.check_message(event)
        if self._ignored_sender(event, context):
            return
        team = inbound.team_of(body)
        await self._accept(context.client, inbound.to_event(team, event, context.bot_user_id or ""), request)

    async def on_message(
        self, body: dict[str, Any], event: MessageEvent, context: AsyncBoltContext, request: AsyncBoltRequest
    ) -> None:
        inbound.check_message(event)
        subtype = event.get("subtype")
        team = inbound.team_of(body)
        if subtype == "message_changed":
            await self._edited(team, event, context.bot_user_id or "")
            return
        if subtype == "message_deleted":
            await drop_stored_message(
                self.runtime,
                platform=PLATFORM,
                workspace_id=team,
                channel_id=str(event["channel"]),
                platform_message_id=str(event.get("deleted_ts") or ""),
            )
            return
        if subtype not in inbound.USER_SUBTYPES or self._ignored_sender(event, context):
            return
        bot_user = context.bot_user_id or ""
        if inbound.is_dm(event):
            pass  # every DM is for the bot
        elif inbound.is_thread_reply(event) and not inbound.mentions_bot(event, bot_user):
            # A reply without a mention is for the bot only in a thread it takes part in; mentions arrive as
            # app_mention as well and are taken there.
            if not await takes_part(self.runtime, inbound.thread_for(team, event)):
                return
        else:
            return  # top-level channel chatter, or a mention (handled by on_mention)
        await self._accept(context.client, inbound.to_event(team, event, bot_user), request)

    def _ignored_sender(self, event: MessageEvent, context: AsyncBoltContext) -> bool:
        if inbound.is_own(event, context.bot_user_id or "", context.bot_id or ""):
            return True
        return inbound.is_from_bot(event) and not self.settings.slack_allow_bot_messages

    async def _edited(self, team: str, event: MessageEvent, bot_user_id: str) -> None:
        message = event.get("message") or {}
        if inbound.is_from_bot(message):
            return
        await update_stored_text(
            self.runtime,
            platform=PLATFORM,
            workspace_id=team,
            channel_id=str(event["channel"]),
            platform_message_id=str(message.get("ts") or ""),
            text=inbound.clean_text(str(message.get("text") or ""), bot_user_id),
        )

    async def _accept(self, client: AsyncWebClient, message: IncomingMessage, request: AsyncBoltRequest) -> None:
        retry = _header(request, "x-slack-retry-num")
        if retry:
            # Intake's dedupe makes a redelivery harmless; the log shows Slack thought an ack was late.
            log.info("slack redelivery", retry=retry, reason=_header(request, "x-slack-retry-reason"))
        try:
            await accept(self.runtime, message)
        except UserFacingError as exc:
            self.after_ack(_tell(client, message.thread, message.user_id, exc.user_message), "refusal")
        except Exception:
            if _retry_number(retry) < LAST_SLACK_RETRY:
                # Unacked (Bolt answers 500), the event comes back from Slack; nothing was stored, nothing is lost.
                log.exception("could not take a Slack message; Slack will deliver it again", retry=retry or "0")
                raise
            # Slack's last delivery: acked, so the user must hear it did not happen.
            log.exception("could not take a Slack message on Slack's last delivery", retry=retry)
            self.after_ack(_tell(client, message.thread, message.user_id, NOT_TAKEN), "failure notice")

    # -- reactions and message shortcuts -------------------------------------------------------------------------

    async def on_reaction(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        """A configured emoji (REACTION_CHAINS) on a message runs its chain in the message's thread."""
        item = event.get("item") or {}
        if item.get("type") != "message" or event.get("user") == context.bot_user_id:
            return
        if reaction_chain(self.runtime, str(event.get("reaction") or "")) is None:
            return  # most reactions are just reactions
        team = inbound.team_of(body)
        channel, ts = str(item.get("channel") or ""), str(item.get("ts") or "")
        if not channel or not ts:
            raise inbound.MalformedPayload("reaction_added without item.channel or item.ts")
        action = MessageAction(
            "reaction",
            await self._thread_of(team, channel, ts),
            str(event.get("user") or ""),
            ts,
            emoji=str(event["reaction"]),
        )
        await self._act(context.client, action)

    async def on_shortcut(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """ "Summarize thread" and "Ask about this" on a message's menu: acked at once, started right after."""
        await ack()
        message = body.get("message") or {}
        channel = str((body.get("channel") or {}).get("id") or "")
        ts = str(message.get("ts") or "")
        team = str((body.get("team") or {}).get("id") or body.get("team_id") or "")
        user = str((body.get("user") or {}).get("id") or "")
        if not channel or not ts or not user:
            log.warning("slack shortcut without channel, message or user; dropped", callback=body.get("callback_id"))
            return
        thread_ts = str(message.get("thread_ts") or ts)
        kind: ActionKind = "summarize" if body.get("callback_id") == SUMMARIZE_SHORTCUT else "ask"
        text = inbound.clean_text(str(message.get("text") or ""), "")
        action = MessageAction(kind, ThreadRef(PLATFORM, team, channel, thread_ts), user, ts, message_text=text)
        self.after_ack(self._act(client, action), f"shortcut {kind}")

    async def _thread_of(self, team: str, channel: str, ts: str) -> ThreadRef:
        """The thread the message is in: ours if we stored it, else the message's own (a thread's first message
        is its key; a reply we never saw is taken as the start of its own)."""
        found = await thread_of_platform_message(self.runtime, PLATFORM, team, channel, ts)
        return found or ThreadRef(PLATFORM, team, channel, ts)

    async def _act(self, client: AsyncWebClient, action: MessageAction) -> None:
        try:
            said = await take_action(self.runtime, action)
        except UserFacingError as exc:
            self.after_ack(_tell(client, action.thread, action.user_id, exc.user_message), "refusal")
            return
        if said and action.kind != "reaction":  # a reaction's result in the thread is answer enough
            self.after_ack(_tell(client, action.thread, action.user_id, said), "action started")

    # -- assistant pane ----------------------------------------------------------------------------------------

    async def on_assistant_thread_started(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        channel, thread_ts = inbound.assistant_thread_of(event)
        # A redelivered event must not greet twice.
        first = await self.runtime.redis.set(f"slack:greeted:{channel}:{thread_ts}", 1, nx=True, ex=_GREETED_TTL_S)
        if first:
            self.after_ack(self._greet(client, channel, thread_ts), "assistant greeting")

    async def _greet(self, client: AsyncWebClient, channel: str, thread_ts: str) -> None:
        try:
            await call(
                "chat.postMessage",
                lambda: client.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, text=self.settings.slack_greeting
                ),
            )
            await call(
                "assistant.threads.setSuggestedPrompts",
                lambda: client.assistant_threads_setSuggestedPrompts(
                    channel_id=channel, thread_ts=thread_ts, prompts=list(SUGGESTED_PROMPTS)
                ),
            )
        except UpstreamError as exc:
            log.warning("assistant greeting failed", error=str(exc))

    # -- slash commands ----------------------------------------------------------------------------------------

    async def on_command(
        self, ack: AsyncAck, body: SlashCommandBody, client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        inbound.check_command(body)
        name = normalise_name(str(body["command"]))
        channel, text = str(body["channel_id"]), str(body.get("text") or "").strip()
        team = str(body.get("team_id") or "")
        if name != "ask":
            # Answered in place (they are validated and queued in milliseconds); results, if any, go to the channel.
            # Bounded, so Slack always gets its ack in time, and a failure is said instead of left unacked.
            command = inbound.to_command(body, ThreadRef(PLATFORM, team, channel, ""))
            try:
                reply = await asyncio.wait_for(COMMANDS.handle(self.runtime, command), COMMAND_BUDGET_S)
            except Exception:  # any failure still gets an answer within Slack's 3 s
                log.exception("slash command failed", command=name)
                await ack(text=NOT_TAKEN, response_type="ephemeral")
                return
            await ack(text=reply.text, response_type="ephemeral")
            return
        if not text:
            await ack(text=COMMANDS["ask"].help, response_type="ephemeral")
            return
        await ack(text="On it: I'll answer in a thread in this channel.", response_type="ephemeral")
        # After the ack: the anchor post is a Web API call that may wait out a 429, which must not delay the ack.
        self.after_ack(self._ask_in_thread(body, client, respond), "/ask")

    async def _ask_in_thread(self, body: SlashCommandBody, client: AsyncWebClient, respond: AsyncRespond) -> None:
        channel, user, text = str(body["channel_id"]), str(body["user_id"]), str(body.get("text") or "").strip()
        team = str(body.get("team_id") or "")
        try:
            anchor = await call(
                "chat.postMessage",
                lambda: client.chat_postMessage(channel=channel, text=f"<@{user}> asked: {_quote(text)}"),
            )
        except SlackRefused as exc:
            hint = " Invite me to this channel first (/invite @threadbot)." if exc.error == "not_in_channel" else ""
            await respond(text=f"I couldn't open a thread here ({exc.error}).{hint}", response_type="ephemeral")
            return
        except UpstreamError as exc:
            log.warning("could not open a thread for /ask", error=str(exc))
            await respond(text=NOT_TAKEN, response_type="ephemeral")
            return
        thread = ThreadRef(PLATFORM, team, channel, str(anchor["ts"]))
        try:
            reply = await COMMANDS.handle(self.runtime, inbound.to_command(body, thread))
        except Exception:  # the user saw "On it": they must learn it did not happen
            log.exception("could not take /ask")
            await respond(text=NOT_TAKEN, response_type="ephemeral")
            await call("chat.delete", lambda: client.chat_delete(channel=channel, ts=thread.thread_key))
            return
        if not reply.accepted:
            await respond(text=reply.text, response_type="ephemeral")
            await call("chat.delete", lambda: client.chat_delete(channel=channel, ts=thread.thread_key))


def _retry_number(header: str) -> int:
    try:
        return int(header or 0)
    except ValueError:
        return 0


def _header(request: AsyncBoltRequest, name: str) -> str:
    values = request.headers.get(name) or ()
    return str(values[0]) if values else ""


def _kind(body: dict[str, Any]) -> str:
    """What a request was, for a log line: `event:app_mention`, `command:/ask`, `block_actions`."""
    event = body.get("event")
    if isinstance(event, dict) and event.get("type"):
        kind = f"event:{event['type']}"
    elif body.get("command"):
        kind = f"command:{body['command']}"
    else:
        kind = str(body.get("type") or "unknown")
    return kind[:80]


def _quote(text: str, limit: int = 300) -> str:
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


async def _tell(client: AsyncWebClient, thread: ThreadRef, user: str, text: str) -> None:
    """A refusal only the sender sees, in the thread they wrote in."""
    try:
        await call(
            "chat.postEphemeral",
            lambda: client.chat_postEphemeral(
                channel=thread.channel_id, user=user, text=text, thread_ts=thread.thread_key
            ),
        )
    except UpstreamError as exc:
        log.warning("could not tell the user why their message was refused", error=str(exc))

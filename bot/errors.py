"""One error tree for the whole bot.

    BotError
    ├── UserFacingError        carries `user_message`: the text the user sees in the thread
    │   ├── InvalidInput       empty, too long, bad encoding
    │   ├── NotAllowed         outside the workspace/channel/user allowlists
    │   └── RateLimited        over the per-user rate; `retry_after_s` says when to try again
    ├── MessageTooLong         a platform refused a text's length; the outbox posts it in parts
    ├── UpstreamError          an external API failed (LLM, platform, storage)
    │   ├── TransientUpstreamError   retried with backoff; `retry_after_s` may come from the upstream
    │   │   └── MailMaybeSent        a mail server may have taken the message before the connection broke
    │   └── PermanentUpstreamError   not retried; the turn fails with `user_message`
    └── ConfigurationError     the operator's settings cannot work; said at start-up, never to users

Adapters translate SDK errors into this tree at the edge, so the core never catches `openai.*` or
`slack_sdk.*` exceptions.
"""

from __future__ import annotations


class BotError(Exception):
    """Base of every error the bot raises on purpose."""


class UserFacingError(BotError):
    """An error whose text is meant for the user who sent the message."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class InvalidInput(UserFacingError):
    pass


class NotAllowed(UserFacingError):
    pass


class RateLimited(UserFacingError):
    def __init__(self, user_message: str, retry_after_s: float) -> None:
        super().__init__(user_message)
        self.retry_after_s = retry_after_s


class MessageTooLong(BotError):
    """A platform refused a post or edit for its length, below the limit we cut at (Slack counts its mrkdwn, which
    conversion can lengthen): the outbox then posts the text in smaller parts."""


class UpstreamError(BotError):
    """An external service failed; `service` names it for logs."""

    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service}: {detail}")
        self.service = service
        self.detail = detail


class TransientUpstreamError(UpstreamError):
    def __init__(self, service: str, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(service, detail)
        self.retry_after_s = retry_after_s


class MailMaybeSent(TransientUpstreamError):
    """The connection broke while a message was being handed over: it may have been accepted. Not sent again by a
    transport that cannot tell (SMTP), so a recipient never gets it twice."""


class PermanentUpstreamError(UpstreamError):
    def __init__(self, service: str, detail: str, user_message: str) -> None:
        super().__init__(service, detail)
        self.user_message = user_message


class ConfigurationError(BotError):
    pass


def causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it was raised from or during, outermost first (each once: a cycle of contexts ends it)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain

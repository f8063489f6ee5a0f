"""What a worker uses when a service has no credentials: the OpenAI-compatible model and the Deepgram-compatible
transcriber from `sandbox/`, served in this process over HTTP, so the embedded default runs the same client code as
production (each says plainly that it is not the real thing); pocketsphinx for real transcripts offline; and a
local SMTP sink that keeps the mail it is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog

from bot.config import Settings
from bot.mail.folder import mail_folder
from bot.mail.resend import ResendMailer
from bot.mail.smtp import SmtpMailer
from bot.media.offline import OfflineTranscriber
from bot.media.transcribe import STAND_IN_KEY, DeepgramTranscriber, transcriber_for
from bot.ports import Mailer, Transcriber

log = structlog.get_logger(__name__)

STAND_IN_NOTICE = (
    "No OPENAI_API_KEY is set, so replies come from the local stand-in model, not a real LLM. "
    "To use a real model set OPENAI_API_KEY (and OPENAI_BASE_URL / OPENAI_MODEL for Azure, Ollama or vLLM)."
)
STAND_IN_TRANSCRIBER_NOTICE = (
    "No DEEPGRAM_API_KEY is set, so media are transcribed by the local stand-in, which only describes the audio. "
    "Set DEEPGRAM_API_KEY (and DEEPGRAM_BASE_URL for self-hosted Deepgram) for real transcripts, or leave "
    "OFFLINE_TRANSCRIBER on for pocketsphinx."
)

OFFLINE_TRANSCRIBER_NOTICE = (
    "No DEEPGRAM_API_KEY is set, so media are transcribed on this machine by pocketsphinx (English; rougher than "
    "Deepgram, one speaker). Set DEEPGRAM_API_KEY (and DEEPGRAM_BASE_URL for self-hosted Deepgram) for production."
)
STAND_IN_MAILER_NOTICE = (
    "No SMTP_HOST or RESEND_API_KEY is set, so email is delivered to a local sink that keeps it under DATA_DIR/mail "
    "(`bot mail list`); nothing leaves this machine."
)


async def open_stand_in_llm(stack: AsyncExitStack, *, announced: bool) -> str:
    """Start the stand-in model for this worker and return its base URL; it stops with `stack`."""
    # Imported here: the sandbox is only loaded by processes that run without a model key.
    from sandbox.openai_server import StandInLLM

    stand_in = await stack.enter_async_context(StandInLLM())
    # Said once: the console already told its user, a standalone worker tells its operator.
    (log.info if announced else log.warning)(STAND_IN_NOTICE)
    return stand_in.base_url


@asynccontextmanager
async def stand_in_transcriber(*, latency_s: float = 0.0) -> AsyncIterator[DeepgramTranscriber]:
    """The local stand-in server started in this process, and a `DeepgramTranscriber` talking to it over HTTP. Its
    transcripts say they are not real."""
    from sandbox.deepgram_server import StandInDeepgram

    async with (
        StandInDeepgram(api_key=STAND_IN_KEY, latency_s=latency_s) as server,
        DeepgramTranscriber(STAND_IN_KEY, server.base_url) as transcriber,
    ):
        yield transcriber


async def open_transcriber(settings: Settings, stack: AsyncExitStack) -> Transcriber:
    """Deepgram when a key is set; otherwise pocketsphinx on this machine (OFFLINE_TRANSCRIBER, the default) or the
    stand-in that only describes the audio; said once to the operator."""
    transcriber = transcriber_for(settings)
    if transcriber is not None:
        return await stack.enter_async_context(transcriber)
    if settings.offline_transcriber:
        log.info(OFFLINE_TRANSCRIBER_NOTICE)
        return OfflineTranscriber()
    log.info(STAND_IN_TRANSCRIBER_NOTICE)
    return await stack.enter_async_context(stand_in_transcriber())


async def open_mailer(settings: Settings, stack: AsyncExitStack) -> Mailer:
    """Resend when RESEND_API_KEY is set, else SMTP_HOST; with neither, a local SMTP sink in this process that keeps
    every mail under DATA_DIR/mail (`bot mail list`), reached over SMTP like a real server."""
    if settings.resend_api_key.get_secret_value():
        resend = ResendMailer(
            settings.resend_api_key.get_secret_value(), settings.resend_base_url, timeout_s=settings.email_timeout_s
        )
        return await stack.enter_async_context(resend)
    if settings.smtp_host:
        return SmtpMailer(
            settings.smtp_host,
            settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value(),
            timeout_s=settings.email_timeout_s,
        )
    from sandbox.smtp_sink import SmtpSink

    sink = await stack.enter_async_context(SmtpSink(mail_folder(settings)))
    log.info(STAND_IN_MAILER_NOTICE, folder=str(mail_folder(settings)))
    return SmtpMailer(sink.host, sink.port, security="none", timeout_s=settings.email_timeout_s)

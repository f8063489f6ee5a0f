"""Multi-workspace install through Bolt's OAuth flow over HTTP: the installation lands in Postgres and that
workspace's events are answered with its own bot token."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from sqlalchemy import delete, select

from adapters.slack.installations import BOT_SCOPES
from bot.models import SLACK_INSTALLATIONS
from bot.runtime import Runtime
from sandbox.openai_server import StandInLLM, Step
from sandbox.slack_server import SlackSandbox
from tests.adapters.slack.conftest import CHANNEL, SlackEvents, mention, stored_messages
from tests.adapters.slack.test_manifest import MANIFEST
from tests.conftest import wait_for

OTHER_TEAM = "T0OTHER01"


# slack_sdk's oauth.v2.access still uses aiohttp's BasicAuth, which aiohttp 3.13 deprecates; not ours to fix.
@pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")
@pytest.mark.slack_settings(slack_client_id="111.222", slack_client_secret="client-secret")
async def test_a_workspace_installs_through_oauth_and_is_answered_with_its_own_token(
    runtime: Runtime, worker: asyncio.Task[None], stand_in: StandInLLM, slack: SlackSandbox, slack_http: SlackEvents
) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(delete(SLACK_INSTALLATIONS))
    base = slack_http.url.removesuffix("/slack/events")
    async with httpx.AsyncClient(timeout=10.0) as browser:
        install = await browser.get(f"{base}/slack/install")
        assert install.status_code == 302
        consent = urlsplit(install.headers["location"])
        assert f"{consent.scheme}://{consent.netloc}{consent.path}" == f"{slack.base_url}/oauth/v2/authorize"
        query = parse_qs(consent.query)
        assert query["client_id"] == ["111.222"]
        assert query["scope"][0].split(",") == list(BOT_SCOPES)
        # Slack sends the browser back with a code; the state must match the cookie set on the way out.
        cookie = install.headers["set-cookie"].split(";")[0]
        done = await browser.get(
            f"{base}/slack/oauth_redirect",
            params={"code": f"code-{OTHER_TEAM}", "state": query["state"][0]},
            headers={"Cookie": cookie},
        )
        assert done.status_code == 200, done.text
        replayed = await browser.get(
            f"{base}/slack/oauth_redirect",
            params={"code": f"code-{OTHER_TEAM}", "state": query["state"][0]},
            headers={"Cookie": cookie},
        )
        assert replayed.status_code != 200, "a state is good for one install only"

    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(SLACK_INSTALLATIONS))).all()
    assert [(r.team_id, r.bot_token) for r in rows] == [(OTHER_TEAM, slack.installed[OTHER_TEAM])]

    stand_in.script(Step(reply="Hello, new workspace."))
    event = mention("Hi from the other workspace")
    assert (await slack_http.event(event, team=OTHER_TEAM)).status_code == 200
    await wait_for(lambda: [m for m in slack.thread(CHANNEL, event["ts"]) if m.text == "Hello, new workspace."])
    assert {c.token for c in slack.calls_to("chat.postMessage")} == {slack.installed[OTHER_TEAM]}

    stranger = mention("Hi from a workspace that never installed")
    await slack_http.event(stranger, team="T0NOBODY1")
    await asyncio.sleep(0.3)
    assert [m.text for m in await stored_messages(runtime) if m.role == "user"] == ["Hi from the other workspace"]

    await slack_http.event({"type": "app_uninstalled", "event_ts": "1690000500.000100"}, team=OTHER_TEAM)
    await wait_for(lambda: _installed_teams(runtime, []))


async def _installed_teams(runtime: Runtime, wanted: list[str]) -> bool:
    async with runtime.engine.connect() as conn:
        return [r.team_id for r in (await conn.execute(select(SLACK_INSTALLATIONS))).all()] == wanted


def test_oauth_asks_for_exactly_the_manifest_scopes() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)


async def test_a_workspace_of_an_enterprise_org_is_answered_with_its_token(runtime: Runtime) -> None:
    """The worker knows only the workspace id; a Grid workspace's installation is stored under its org."""
    from slack_sdk.oauth.installation_store import Bot

    from adapters.slack.installations import InstallationTokens, PostgresInstallationStore

    store = PostgresInstallationStore(runtime.engine)
    await store.async_save_bot(
        Bot(
            enterprise_id="E0ORG",
            team_id="T0GRID",
            bot_token="xoxb-grid",
            bot_id="B1",
            bot_user_id="U0BOT",
            installed_at=1700000000.0,
        )
    )
    assert await InstallationTokens(store)("T0GRID") == "xoxb-grid"

"""`bot mail list|show` over what the local sink kept under DATA_DIR/mail."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bot.config import Settings
from bot.mail.smtp import SmtpMailer
from sandbox.smtp_sink import SmtpSink
from tests.bot.mail.test_smtp import email_to
from tests.conftest import run_bot


async def test_list_and_show_the_kept_mail(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with SmtpSink(data / "mail") as sink:
        await SmtpMailer("127.0.0.1", sink.port, security="none").send(email_to("dana@acme.test"))
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env["DATA_DIR"] = str(data)

    code, out, err = await run_bot("mail", "list", "--json", env=env)
    assert code == 0, err
    [listed] = json.loads(out)
    assert listed["to"] == "dana@acme.test"
    assert listed["subject"] == "Notes"
    code, out, _ = await run_bot("mail", "list", env=env)
    assert code == 0
    assert "dana@acme.test" in out
    assert "Notes" in out

    code, out, err = await run_bot("mail", "show", listed["id"][:12], env=env)
    assert code == 0, err
    assert "To: dana@acme.test" in out
    assert "Subject: Notes" in out
    assert out.rstrip().endswith("Plain notes.")
    code, out, _ = await run_bot("mail", "show", listed["id"], "--html", env=env)
    assert out.rstrip().endswith("<p>Notes.</p>")

    code, _, err = await run_bot("mail", "show", "1999", env=env)
    assert code == 1
    assert "No mail with the id '1999'." in err


async def test_an_empty_folder_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env["DATA_DIR"] = str(tmp_path)
    code, out, _ = await run_bot("mail", "list", env=env)
    assert code == 0
    assert "No mail in" in out

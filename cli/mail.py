"""`bot mail`: the mail the embedded default's local sink kept under DATA_DIR/mail (no SMTP_HOST or RESEND_API_KEY
set): `list` them, `show` one."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

mail_app = typer.Typer(help="Mail kept by the local sink (the embedded default): list, show one.", no_args_is_help=True)


@mail_app.command("list")
def list_command(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")] = False,
) -> None:
    """The mails the sink received, newest first: id, when, to, subject."""
    from bot.mail.folder import kept_mail, mail_folder
    from cli.common import load_settings, out

    settings = load_settings()
    mails = list(reversed(kept_mail(settings)))[:limit]
    if as_json:
        rows = [
            {"id": m.id, "to": m.message["To"], "subject": m.message["Subject"], "date": m.message["Date"]}
            for m in mails
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not mails:
        out.print(f"No mail in {escape(str(mail_folder(settings)))}.")
        return
    table = Table("id", "date", "to", "subject")
    for mail in mails:
        table.add_row(
            mail.id,
            escape(str(mail.message["Date"])),
            escape(str(mail.message["To"])),
            escape(str(mail.message["Subject"])),
        )
    out.print(table)


@mail_app.command("show")
def show_command(
    mail_id: Annotated[str, typer.Argument(help="The mail's id (see `bot mail list`); a unique prefix will do.")],
    html: Annotated[bool, typer.Option(help="Print the HTML part instead of the plain text.")] = False,
    raw: Annotated[bool, typer.Option(help="Print the whole message as it was received.")] = False,
) -> None:
    """One mail: its headers and its plain-text part (or the HTML, or all of it raw)."""
    from bot.mail.folder import kept_mail
    from cli.common import load_settings

    matches = [mail for mail in kept_mail(load_settings()) if mail.id.startswith(mail_id)]
    if len(matches) != 1:
        typer.echo(
            f"No mail with the id {mail_id!r}." if not matches else f"{len(matches)} mails match {mail_id!r}.", err=True
        )
        raise typer.Exit(1)
    [mail] = matches
    if raw:
        typer.echo(mail.path.read_bytes().decode(errors="replace"))
        return
    for header in ("From", "To", "Subject", "Date", "Message-ID"):
        typer.echo(f"{header}: {mail.message[header]}")
    typer.echo("")
    typer.echo(mail.html if html else mail.text)

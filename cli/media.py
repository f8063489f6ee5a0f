"""`bot media`: find shared files by tag or words (`search`) and look at one (`show`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

media_app = typer.Typer(help="Media shared with the bot: search by tag or words, show one.", no_args_is_help=True)


@media_app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="Words to find in tags, names and transcripts (all must match).")] = "",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only media with this tag; repeatable.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """Search media by the digest's tags and by words in names and transcripts, newest first."""
    from bot.media.search import search_media
    from cli.common import load_settings, out, ready_services, run_async
    from jobs.queue import open_runtime

    settings = load_settings()

    async def run() -> None:
        async with (
            ready_services(settings) as services,
            open_runtime(services.settings) as runtime,
            runtime.autocommit.connect() as conn,
        ):
            found = await search_media(conn, query, tags=tag, limit=limit)
        table = Table("id", "name", "where", "by", "length", "status", "tags", "shared")
        for item in found:
            length = f"{item.duration_s / 60:.1f} min" if item.duration_s else ""
            table.add_row(
                str(item.id),
                escape(item.name),
                f"{item.platform}:{item.channel_id}",
                escape(item.owner_id),
                length,
                escape(item.status if not item.error else f"{item.status}: {item.error[:40]}"),
                escape(", ".join(item.tags)),
                item.created_at.strftime("%Y-%m-%d %H:%M"),
            )
        out.print(table if found else "No media found.")

    run_async(run())


@media_app.command("show")
def show_command(
    media_id: Annotated[int, typer.Argument(help="The media's id (see `bot media search`).")],
    transcript: Annotated[bool, typer.Option(help="Print the whole timestamped transcript.")] = False,
) -> None:
    """Show one file: where it came from, its status, tags, digest and (with --transcript) its transcript."""
    import json

    from sqlalchemy import select

    from bot.media.models import MEDIA, MEDIA_TAGS
    from bot.media.transcripts import load_transcript, timestamped
    from cli.common import EXIT_REFUSED, err, load_settings, out, ready_services, run_async
    from jobs.queue import open_runtime

    settings = load_settings()

    async def run() -> int:
        async with (
            ready_services(settings) as services,
            open_runtime(services.settings) as runtime,
            runtime.autocommit.connect() as conn,
        ):
            row = (await conn.execute(select(MEDIA).where(MEDIA.c.id == media_id))).mappings().first()
            tags = list(
                (await conn.execute(select(MEDIA_TAGS.c.tag).where(MEDIA_TAGS.c.media_id == media_id))).scalars()
            )
            text = await load_transcript(conn, media_id) if transcript else None
        if row is None:
            err.print(f"No media {media_id}.")
            return EXIT_REFUSED
        for field in ("name", "status", "error", "kind", "content_type", "size", "sha256", "duration_s", "blob_key"):
            out.print(f"[bold]{field}[/bold]: {escape(str(row[field]))}")
        out.print(
            f"[bold]where[/bold]: {row['platform']}:{row['workspace_id']}:{row['channel_id']} by {row['owner_id']}"
        )
        out.print(f"[bold]chain[/bold]: {row['chain']} v{row['chain_version']}  run {row['run_id']}")
        out.print(f"[bold]tags[/bold]: {', '.join(tags)}")
        if row["digest"]:
            out.print("[bold]digest[/bold]:", json.dumps(row["digest"], indent=2, ensure_ascii=False))
        if text is not None:
            out.print(timestamped(text.utterances) or text.text, markup=False)
        return 0

    raise typer.Exit(run_async(run()))

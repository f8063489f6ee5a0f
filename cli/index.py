"""`bot index`: the retrieval index of transcript chunks, its vector width (`status`) and recomputing its vectors
after EMBEDDING_DIMENSIONS or EMBEDDING_MODEL changed (`reembed`)."""

from __future__ import annotations

from typing import Annotated

import typer

index_app = typer.Typer(
    help="The retrieval index (transcript chunks in pgvector): status, reembed.", no_args_is_help=True
)


@index_app.command("status")
def status_command() -> None:
    """Show the index's vector width, EMBEDDING_DIMENSIONS, and how many chunks it holds (and lack a vector)."""
    from bot.db import create_engine
    from bot.media.index import index_state
    from cli.common import load_settings, out, ready_services, run_async

    settings = load_settings()

    async def run() -> None:
        async with ready_services(settings) as services:
            engine = create_engine(services.settings.database_url, pool_size=1)
            try:
                async with engine.connect() as conn:
                    state = await index_state(conn)
            finally:
                await engine.dispose()
        agree = "" if state.dimensions == settings.embedding_dimensions else "  (differs: run `bot index reembed`)"
        out.print(f"vector width:         {state.dimensions}")
        out.print(f"EMBEDDING_DIMENSIONS: {settings.embedding_dimensions}{agree}")
        out.print(f"EMBEDDING_MODEL:      {settings.embedding_model}")
        out.print(f"chunks:               {state.chunks} ({state.missing} without a vector)")

    run_async(run())


@index_app.command("reembed")
def reembed_command(
    everything: Annotated[
        bool,
        typer.Option("--all", help="Recompute every vector, not only missing ones (after EMBEDDING_MODEL changed)."),
    ] = False,
) -> None:
    """Make the index EMBEDDING_DIMENSIONS wide (clearing its vectors when the width changes) and embed every chunk
    without a vector with EMBEDDING_MODEL. Safe to run again: an interrupted run continues where it stopped. Workers
    may keep running; retrieval leaves out the chunks not yet done."""
    from contextlib import AsyncExitStack

    from rich.markup import escape

    from bot.db import create_engine
    from bot.errors import UpstreamError
    from bot.llm import OpenAILLM
    from bot.media.index import reembed
    from cli.common import err, load_settings, out, ready_services, run_async
    from jobs.stand_ins import open_stand_in_llm

    settings = load_settings()

    async def run() -> int:
        async with AsyncExitStack() as stack:
            services = await stack.enter_async_context(ready_services(settings))
            stand_in = await open_stand_in_llm(stack, announced=False) if settings.uses_stand_in_llm else None
            llm = OpenAILLM.from_settings(services.settings, stand_in_url=stand_in)
            stack.push_async_callback(llm.aclose)
            engine = create_engine(services.settings.database_url, pool_size=2)
            stack.push_async_callback(engine.dispose)

            def progress(done: int, total: int) -> None:
                err.print(f"embedded {done} of {total} chunks")

            try:
                return await reembed(
                    engine, llm, settings.embedding_dimensions, everything=everything, progress=progress
                )
            except UpstreamError as exc:
                err.print(f"[red]Embedding failed:[/red] {escape(str(exc))}. Run the command again to continue.")
                raise typer.Exit(1) from None

    done = run_async(run())
    out.print(
        f"The index is {settings.embedding_dimensions} wide; embedded {done} chunks with {settings.embedding_model}."
    )

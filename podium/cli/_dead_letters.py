"""``podium dead-letters`` and ``podium replay``: what runs could not do, and doing it again."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ._app import DEFAULT_CONFIG, EXIT_FAILED, ConfigOption, app, console, user_errors


@app.command("dead-letters")
@user_errors
def dead_letters(
    run_id: Annotated[str | None, typer.Argument(help="only this run's (id or prefix)")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    pipeline: Annotated[str | None, typer.Option(help="only this pipeline's")] = None,
    limit: Annotated[int, typer.Option(help="how many, newest first", min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="print them as JSON")] = False,
) -> None:
    """List requests that failed for good and records that were rejected (redacted)."""
    import anyio

    from podium.orchestrator.config import load_config

    loaded = load_config(config)

    async def fetch() -> list[Any]:
        from podium.orchestrator import Journal, open_database

        async with open_database(loaded.database.url) as db:
            journal = Journal(db, lease=loaded.journal.lease)
            full_id = (await journal.run(run_id))[0].id if run_id else None
            return await journal.dead_letters(full_id, pipeline, limit)

    letters = anyio.run(fetch, backend="asyncio")
    if as_json:
        import orjson

        rows = [d.model_dump(mode="json") for d in letters]
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    from ._display import dead_letters_table

    console().print(dead_letters_table(letters, where=loaded.database.url))


@app.command()
@user_errors
def replay(
    run_id: Annotated[
        str, typer.Argument(help="the run whose dead-lettered requests to send again")
    ],
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Send a run's dead-lettered requests again, through the rest of its pipeline.

    Exactly those requests are made (a failed page starts its chain again); the new run
    is recorded with trigger ``replay``, and the dead letters name it.
    """
    import anyio

    from podium.orchestrator import configure_logging
    from podium.orchestrator.config import load_config

    from ._run import report

    configure_logging(level="WARNING" if as_json else "INFO", replace_default=True)
    loaded = load_config(config)

    async def go() -> Any:
        from podium.orchestrator import Journal, open_database, run_pipeline
        from podium.pipeline import RunNotFound

        async with open_database(loaded.database.url) as db:
            journal = Journal(db, lease=loaded.journal.lease)
            original = (await journal.run(run_id))[0]
            letters = [
                d
                for d in await journal.dead_letters(original.id, limit=100_000)
                if d.kind == "request" and d.replayed_in is None
            ]
            if not letters:
                raise RunNotFound(
                    f"run {original.id[:8]} has no dead-lettered requests left to replay "
                    f"(see: podium dead-letters {original.id[:8]})"
                )
            pipeline = loaded.pipeline(original.pipeline)
            by_stage: dict[str, list[Any]] = {}
            for letter in letters:
                by_stage.setdefault(letter.stage, []).append(letter)
            result = await run_pipeline(
                pipeline,
                connectors=loaded.connectors_for(pipeline),
                database=db,
                concurrency=loaded.limits.concurrency,
                params={k: v for k, v in original.params.items() if v != "***"},
                trigger="replay",
                secrets=loaded.secrets,
                replay=by_stage,
                replay_of=original.id,
                lease=loaded.journal.lease,
            )
            await journal.mark_replayed([d.id for d in letters if d.id is not None], result.run.id)
            return result

    result = anyio.run(go, backend="asyncio")
    report(result, as_json=as_json)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)

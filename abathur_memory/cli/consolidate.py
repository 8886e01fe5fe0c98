"""``abathur-memory consolidate``: consolidation proposals, applying them, undoing a run."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from abathur_memory.cli.common import (
    db_option,
    principal_options,
    print_rows,
    progress_bar,
    settings_from,
)
from abathur_memory.memory.consolidation import ConsolidationReport
from abathur_memory.runtime import open_runtime


@click.command()
@db_option
@principal_options
@click.option("--prefix", metavar="NAMESPACE", help="The memories under this namespace.")
@click.option("--dry-run", is_flag=True, help="Only propose (the default without --apply).")
@click.option("--apply", "apply", multiple=True, metavar="ID", help="Apply this proposal.")
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    default=None,
    help="Apply every proposal of at least this confidence.",
)
@click.option("--undo", metavar="RUN", default=None, help="Take back what an apply run wrote.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def consolidate(
    db: str | None,
    prefix: str | None,
    dry_run: bool,
    apply: tuple[str, ...],
    min_confidence: float | None,
    undo: str | None,
    as_json: bool,
    **principal: Any,
) -> None:
    """Propose exact and near duplicates, updates (a newer memory about the same subject)
    and clusters of episodic memories under --prefix, each with its evidence; apply chosen
    proposals (--apply ID, or --min-confidence); undo a run (--undo RUN).

    Applying writes links and new memories only: nothing is deleted or rewritten in place.
    With chat_model set, the model judges updates and writes clusters' text.
    """
    applying = bool(apply) or min_confidence is not None
    if undo is None and prefix is None:
        raise click.UsageError("give --prefix (or --undo RUN)")
    if dry_run and applying:
        raise click.UsageError("--dry-run proposes only: leave out --apply and --min-confidence")
    settings = settings_from(db, **principal)

    async def run() -> ConsolidationReport:
        async with open_runtime(settings, create=False) as runtime:
            service = runtime.consolidation
            if undo is not None:
                return await service.undo(runtime.principal, undo)
            assert prefix is not None
            with progress_bar(not as_json) as step:
                return await service.consolidate(
                    runtime.principal,
                    prefix,
                    dry_run=not applying,
                    apply=list(apply),
                    min_confidence=min_confidence,
                    progress=step,
                )

    report = asyncio.run(run())
    if as_json:
        click.echo(report.model_dump_json(indent=2))
        return
    shown = report.proposals
    print_rows(
        f"{report.run.mode} run {report.run.id}",
        ("id", "kind", "confidence", "memories"),
        [
            (
                p.id,
                p.kind,
                f"{p.confidence:.2f}",
                ", ".join(f"{m.key}@{m.version}" for m in p.members),
            )
            for p in shown
        ],
    )
    for skipped in report.skipped:
        click.echo(f"skipped {skipped.id}: {skipped.reason}")
    model = report.notes.get("model")
    if model:
        said = f"chat model {model['model']}: {model['answered']} answered"
        said += f", {model['fell_back']} left to the deterministic pass"
        click.echo(said + (f" ({model['errors'][0]})" if model.get("errors") else ""))
    counts = ", ".join(f"{k}: {v}" for k, v in report.run.counts.items())
    click.echo(f"{report.run.mode} run {report.run.id} ({counts})")

"""`llem-docker reproduce PACK_OR_DIR`: rerun a published study's plan on this machine
(review/reproduce.py), after showing how this machine differs from the original's, then say
how to compare the two."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from llem_docker.errors import ConfigError

out = Console(soft_wrap=False)
err = Console(stderr=True)


def _points(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def reproduce(
    source: Path = typer.Argument(..., help="a pack (llem-docker pack) or a study folder"),
    results_dir: str | None = typer.Option(None, "--results-dir", help="where the rerun goes"),
    points: str | None = typer.Option(
        None, "--points", help="only these points: config-hash prefixes or labels, comma-separated"
    ),
    cycles: int | None = typer.Option(None, "--cycles", min=1, help="only the first N cycles"),
    allow_image_drift: bool = typer.Option(
        False, "--allow-image-drift", help="run although an image's digest differs"
    ),
    runner: str | None = typer.Option(None, "--runner", help="as `run --runner`"),
    study_file: Path | None = typer.Option(
        None, "--study", help="the study file, for a folder made before study.yaml was kept"
    ),
    resume: Path | None = typer.Option(
        None, "--resume", help="finish an interrupted reproduction (same --points/--cycles)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="show the difference and the plan"),
    no_gaps: bool = typer.Option(
        False, "--no-gaps", help="no thermal gaps between runs (default: the original's)"
    ),
) -> None:
    """Rerun a packed study as it was run, into a new folder.

    The same configs, seed, order and measurement settings; this machine's environment is set
    against the original's first. Then: llem-docker compare ORIGINAL NEW."""

    if not source.exists():
        raise ConfigError(f"{source} does not exist", source="PACK_OR_DIR")
    scratch = Path(tempfile.mkdtemp(prefix="llem-reproduce-"))
    try:
        code = _run(source, scratch, study_file, runner, results_dir, points, cycles,
                    allow_image_drift, resume, dry_run, no_gaps)  # fmt: skip
    finally:  # the extracted pack and the staged study; a kept original was moved out
        shutil.rmtree(scratch, ignore_errors=True)
    raise typer.Exit(code)


def _run(
    source: Path,
    scratch: Path,
    study_file: Path | None,
    runner: str | None,
    results_dir: str | None,
    points: str | None,
    cycles: int | None,
    allow_image_drift: bool,
    resume: Path | None,
    dry_run: bool,
    no_gaps: bool,
) -> int:
    """reproduce's work, in `scratch` (which the caller removes): the exit code."""
    from llem_docker.execution.loop import StudyInterrupted, execute_study
    from llem_docker.execution.pipeline import prepare_study
    from llem_docker.review import reproduce as rp
    from llem_docker.review.envdiff import diff, render_lines
    from llem_docker.review.envrecord import current_environment, study_environment
    from llem_docker.study.loader import load_study

    original = rp.open_original(source, scratch / "original", study_file)
    staged = rp.staged_study(original, scratch / "study")
    study = load_study(staged)
    execution = original.manifest.execution
    profile = original.manifest.validity.profile if original.manifest.validity else None
    prepared = prepare_study(
        study, source=staged, runner=runner, results_dir=results_dir,
        profile=profile if profile in ("quick", "standard", "publication") else None,
        cycles=None if resume else execution.n_cycles,
        order=None if resume else execution.cycle_order, resume=resume, no_gaps=no_gaps,
    )  # fmt: skip
    settings, runners = prepared.settings, prepared.runners
    taken = rp.adopt_settings(original, settings)  # the original's, not this machine's
    plan = rp.choose_points(prepared.plan, _points(points), cycles)
    rp.stage(original, staged.parent, plan)
    diffs = diff(
        study_environment(original.folder),
        current_environment(settings, runners),
        allow_image_change=allow_image_drift,
    )
    _show(original, plan.runs, taken, render_lines(diffs))
    refused = [d for d in diffs if d.severity == "refuse"]
    if refused:
        raise ConfigError(
            "an image differs from the one the original study ran: "
            + "; ".join(f"{d.field} {d.original} there, {d.current} here" for d in refused),
            source="PACK_OR_DIR",
            fix="use the original image (its digest is in pack.json), or pass "
            "--allow-image-drift and say so with the verdict",
        )
    if dry_run:
        return 0
    try:
        outcome = execute_study(
            plan, study, settings, runners, console=out, as_json=False, resume=prepared.resume
        )
    except StudyInterrupted as exc:
        outcome = exc.outcome
        err.print(f"[yellow]interrupted[/yellow]: partial results in {outcome.study_dir}")
    rp.write_record(outcome.study_dir, original, diffs, allow_image_drift)
    folder = original.folder
    if original.pack is not None:  # kept beside the rerun, for compare
        folder = outcome.study_dir / "original" / original.folder.name
        if not folder.exists():
            folder.parent.mkdir(exist_ok=True)
            shutil.move(str(original.folder), folder)
    out.print(
        f"compare with: llem-docker compare {escape(str(folder))} {escape(str(outcome.study_dir))}",
        highlight=False,
    )
    return outcome.exit_code


def _show(original: object, runs: tuple[object, ...], taken: list[str], lines: list[str]) -> None:
    from llem_docker.review.reproduce import Original

    assert isinstance(original, Original)
    m = original.manifest
    out.print(
        f"[bold]reproducing {escape(m.study_id)}[/bold] (design {m.design_hash[:12]}, "
        f"{len(runs)} of its {len(m.runs)} runs, order {m.execution.cycle_order}, "
        f"seed {m.execution.seed})",
        highlight=False,
    )
    for line in taken:
        out.print(escape(line), highlight=False)
    out.print("environment, the original's against this machine's:", highlight=False)
    for line in lines:
        style = "red" if line.startswith("refuse") else "yellow" if line.startswith("warn") else ""
        out.print(f"[{style}]{escape(line)}[/]" if style else escape(line), highlight=False)

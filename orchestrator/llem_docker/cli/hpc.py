"""The command-line side of SLURM execution: `run --executor slurm [--wait]`, `status`,
`collect`. Registered on the app in cli.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import ConfigError
from llem_docker.execution.slurm.script import SLACK_S, SlurmOptions, options_from, render_script
from llem_docker.store.layout import StudyDir

if TYPE_CHECKING:  # the study loop's modules load when a command needs them
    from llem_docker.store.manifest import Manifest
    from llem_docker.study.model import StudyConfig
    from llem_docker.study.plan import StudyPlan

out = Console(soft_wrap=False)
err = Console(stderr=True)
POLL_S = 10.0


def refuse_searches(plan: StudyPlan, source: str | Path) -> None:
    """Capacity searches run inline only: each probe's rate depends on the probes before it,
    which a SLURM array job, its tasks fixed at submission, cannot express."""
    if not plan.searches:
        return
    first = plan.searches[0]
    raise ConfigError(
        f"the study has {len(plan.searches)} capacity search(es) (serving.search, first: "
        f"{first.run_id}); searches run inline only, since each probe's rate follows from "
        "the probes before it and a SLURM array's tasks are fixed when it is submitted",
        source=str(source),
        key="serving.search",
        fix="run it inline inside an allocation (`salloc --gpus=1` then `llem-docker run "
        "STUDY`, or `srun --gpus=1 llem-docker run STUDY`), or list the rates in "
        "`sweep: {serving.request_rate: [...]}` for the array job",
    )


def slurm_options(
    settings: Settings,
    *,
    partition: str | None,
    account: str | None,
    time_limit: str | None,
    gpus_per_run: int | None,
    max_parallel: int | None,
) -> SlurmOptions:
    timeout = float(settings.execution.experiment_timeout_seconds)
    gap = max(settings.execution.config_gap_seconds, settings.execution.cycle_gap_seconds)
    return options_from(
        settings,
        partition=partition,
        account=account,
        time=time_limit,
        gpus_per_run=gpus_per_run,
        max_parallel=max_parallel,
        needed_s=timeout + gap + SLACK_S,
    )


def show_slurm_script(
    plan: StudyPlan, settings: Settings, opts: SlurmOptions, *, as_json: bool
) -> None:
    """`run --executor slurm --dry-run`: the sbatch script a real run would submit, with the
    study folder's timestamp left as a placeholder. Nothing is written or submitted."""
    results = Path(str(settings.output.results_dir)).expanduser().resolve()
    study_id = f"{plan.name}_<UTC>"
    study_dir = results / study_id
    script = render_script(
        opts,
        study_dir=study_dir,
        study_id=study_id,
        design_hash=plan.design_hash,
        runs_file=StudyDir(study_dir).submission(1, "runs"),
        n_tasks=len(plan.runs),
        submission=1,
    )
    if as_json:
        err.print(script, markup=False, highlight=False)
        return
    out.print(f"\n[bold]sbatch script[/bold] ({len(plan.runs)} array tasks; not submitted):")
    out.print(script, markup=False, highlight=False, soft_wrap=True)


def run_on_slurm(
    plan: StudyPlan,
    study: StudyConfig,
    settings: Settings,
    runners: dict[str, RunnerSpec],
    opts: SlurmOptions,
    *,
    resume: tuple[Path, Manifest] | None,
    gpus: str | None,
    wait: bool,
    as_json: bool,
) -> int:
    from llem_docker.execution.slurm.submit import submit_study

    console = err if as_json else out
    study_dir, manifest = submit_study(
        plan, study, settings, runners, opts, console=console, resume=resume, gpus=gpus
    )
    if not wait:
        if as_json:
            job = manifest.submissions[-1].job_id
            print(json.dumps({"study_dir": str(study_dir), "job_id": job}, indent=2))
        else:
            out.print(
                f"follow it: llem-docker status {escape(str(study_dir))}\n"
                f"when every task ended: llem-docker collect {escape(str(study_dir))}",
                highlight=False,
            )
        return 0
    return wait_and_collect(study_dir, as_json=as_json)


def wait_and_collect(study_dir: Path, *, as_json: bool, poll_s: float = POLL_S) -> int:
    from llem_docker.execution.slurm.status import refresh
    from llem_docker.store.manifest import Manifest

    console = err if as_json else out
    total = len(Manifest.read(study_dir).runs)
    try:
        with console.status("waiting for SLURM") as shown:
            while True:
                r = refresh(study_dir)
                states = [e.state for e in r.manifest.runs]
                shown.update(
                    f"SLURM: {total - r.active}/{total} runs ended "
                    f"({states.count('running')} running, {states.count('queued')} queued)"
                )
                if r.active == 0:
                    break
                time.sleep(poll_s)
    except KeyboardInterrupt:
        err.print(
            "[yellow]stopped waiting[/yellow]; the job goes on: "
            f"llem-docker status {escape(str(study_dir))}"
        )
        return 130
    return _collect(study_dir, r.manifest, as_json)


def _collect(study_dir: Path, manifest: Manifest, as_json: bool) -> int:
    from llem_docker.execution.progress import print_summary
    from llem_docker.store.collect import assemble

    result, data = assemble(study_dir, manifest)
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print_summary(out, result, str(study_dir))
    return 0 if manifest.state == "completed" else 1


def status(
    results_dir: Path = typer.Argument(..., help="a study's results folder"),
    as_json: bool = typer.Option(False, "--json", help="print the refreshed manifest"),
) -> None:
    """Refresh a study's manifest from its run folders and SLURM; show each run's state."""
    from llem_docker.execution.progress import STATE_STYLE
    from llem_docker.execution.resume import read_prior
    from llem_docker.execution.slurm.status import refresh
    from llem_docker.store.repair import rebuild_torn

    read_prior(results_dir, "llem-docker status")  # a clear error for a wrong folder
    r = refresh(results_dir)
    r.notes.extend(rebuild_torn(results_dir, r.manifest))
    if as_json:
        print(json.dumps(r.manifest.model_dump(mode="json"), indent=2))
        raise typer.Exit(0)
    m = r.manifest
    table = Table(title=f"{m.study_id}: {m.state}", title_justify="left")
    for col in ("run", "state", "job", "ended", "error"):
        table.add_column(col, overflow="fold")
    for e in m.runs:
        style = STATE_STYLE.get(e.state, "")
        error = f"{e.error.type}: {e.error.message.splitlines()[0]}" if e.error else ""
        table.add_row(
            e.run_id,
            f"[{style}]{e.state}[/{style}]",
            e.job or "",
            (e.ended_at or "")[:19].replace("T", " "),
            escape(error[:160]),
        )
    out.print(table)
    seen = [str(e.state) for e in m.runs]
    counts = {s: seen.count(s) for s in STATE_STYLE}
    out.print(", ".join(f"{n} {s}" for s, n in counts.items() if n), highlight=False)
    for note in r.notes:
        out.print(f"[dim]note: {escape(note)}[/dim]")
    if r.active == 0 and m.executor == "slurm":
        out.print(f"every task ended: llem-docker collect {escape(str(results_dir))}")


def collect(
    results_dir: Path = typer.Argument(..., help="a study's results folder"),
    as_json: bool = typer.Option(False, "--json", help="print study.json"),
    partial: bool = typer.Option(
        False, "--partial", help="assemble even while some runs are queued or running"
    ),
) -> None:
    """Assemble study.json and results.parquet once every run has ended."""
    from llem_docker.execution.resume import read_prior
    from llem_docker.execution.slurm.status import refresh

    read_prior(results_dir, "llem-docker collect")
    r = refresh(results_dir)
    if r.active and not partial:
        raise ConfigError(
            f"{r.active} runs are still queued or running",
            source=str(results_dir),
            fix=f"wait (`llem-docker status {results_dir}`), or pass --partial",
        )
    raise typer.Exit(_collect(results_dir, r.manifest, as_json))

"""`llem-docker` command line."""

from __future__ import annotations

import json
import logging
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import ConfigError, LlemError
from llem_docker.study.loader import load_study
from llem_docker.study.plan import StudyPlan
from llem_docker.study.view import estimate, print_plan, print_plan_json
from llem_harness.host_api import BACKENDS, __version__

app = typer.Typer(
    name="llem-docker",
    help="Formal, multi-backend LLM inference energy benchmarks in ephemeral containers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=False)
err = Console(stderr=True)
log = logging.getLogger("llem_docker")


class Order(StrEnum):
    sequential = "sequential"
    interleaved = "interleaved"
    shuffled = "shuffled"


class Profile(StrEnum):
    quick = "quick"
    standard = "standard"
    publication = "publication"


class Executor(StrEnum):
    inline = "inline"
    slurm = "slurm"


CONFIRM_ABOVE = 500


@app.command()
def run(
    study_file: Path = typer.Argument(..., help="study or experiment YAML file"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show the plan; run nothing"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    runner: str | None = typer.Option(
        None,
        "--runner",
        help="runner for all backends (local | docker | docker:<image> | apptainer:<sif>)",
    ),
    cycles: int | None = typer.Option(None, "--cycles", min=1, help="number of cycles"),
    order: Order | None = typer.Option(None, "--order", help="cycle order"),
    profile: Profile | None = typer.Option(
        None,
        "--profile",
        help="quick (1 cycle, no gaps) | standard (3, interleaved) | publication (5, shuffled)",
    ),
    no_gaps: bool = typer.Option(False, "--no-gaps", help="no thermal gaps between runs"),
    results_dir: str | None = typer.Option(None, "--results-dir", help="where results go"),
    yes: bool = typer.Option(
        False, "--yes", "-y", help=f"confirm plans above {CONFIRM_ABOVE} runs"
    ),
    resume: Path | None = typer.Option(
        None,
        "--resume",
        help="finish the study in this results folder: completed runs are kept, the rest "
        "run again (the study file must still match it)",
    ),
    executor: Executor = typer.Option(
        Executor.inline,
        "--executor",
        help="inline (run here, one run at a time) | slurm (submit one sbatch array job)",
    ),
    max_runs: int | None = typer.Option(
        None,
        "--max-runs",
        min=1,
        help="refuse plans of more runs (default: execution.max_runs in the user config, 100000)",
    ),
    partition: str | None = typer.Option(None, "--partition", help="slurm: partition"),
    account: str | None = typer.Option(None, "--account", help="slurm: account"),
    time_limit: str | None = typer.Option(
        None, "--time", help="slurm: time limit per run (default: from the experiment timeout)"
    ),
    gpus_per_run: int | None = typer.Option(
        None, "--gpus-per-run", min=0, help="slurm: GPUs per run (default 1)"
    ),
    max_parallel: int | None = typer.Option(
        None, "--max-parallel", min=1, help="slurm: runs at once (default 1, in plan order)"
    ),
    wait: bool = typer.Option(
        False, "--wait", help="slurm: wait for every task, then collect the results"
    ),
    gpus: str | None = typer.Option(
        None,
        "--gpus",
        help="GPUs for container runs: all | none | 0,1 (overrides docker.gpus, apptainer.gpus)",
    ),
    strict: bool | None = typer.Option(
        None,
        "--strict/--no-strict",
        help="exit 3 when any point is invalid (docs/validity.md), after writing everything; "
        "on by default under --profile publication",
    ),
) -> None:
    """Run a study (or show its plan with --dry-run)."""
    from llem_docker.execution.pipeline import prepare_study

    def say_size(total: int, limit: int) -> None:
        if dry_run and not as_json:  # the size first: expanding a large study takes a moment
            out.print(
                f"[bold]{study.name}: {total:,} runs[/bold] (limit {limit:,})", highlight=False
            )

    study = load_study(study_file)
    prepared = prepare_study(
        study,
        source=study_file,
        runner=runner,
        results_dir=results_dir,
        profile=profile.value if profile is not None else None,
        cycles=cycles,
        order=order.value if order is not None else None,
        no_gaps=no_gaps,
        gpus=gpus,
        resume=resume,
        max_runs=max_runs,
        check_gpus=executor is not Executor.slurm,
        on_size=say_size,
    )
    plan, settings, runners = prepared.plan, prepared.settings, prepared.runners
    log.debug("planned %d runs, design hash %s", len(plan.runs), plan.design_hash)
    slurm_opts = None
    if executor is Executor.slurm:
        from llem_docker.cli.hpc import refuse_searches, slurm_options

        refuse_searches(plan, study_file)
        slurm_opts = slurm_options(
            settings,
            partition=partition,
            account=account,
            time_limit=time_limit,
            gpus_per_run=gpus_per_run,
            max_parallel=max_parallel,
        )
    if dry_run:
        _show_plan(plan, runners, settings, as_json)
        if slurm_opts is not None:
            from llem_docker.cli.hpc import show_slurm_script

            show_slurm_script(plan, settings, slurm_opts, as_json=as_json)
        return
    if plan.most_runs > CONFIRM_ABOVE and not yes:
        raise ConfigError(
            f"the plan has {plan.most_runs} runs (more than {CONFIRM_ABOVE})",
            source=study_file,
            fix="check it with --dry-run, then pass --yes",
        )
    if slurm_opts is not None:
        from llem_docker.cli.hpc import run_on_slurm

        code = run_on_slurm(
            plan,
            study,
            settings,
            runners,
            slurm_opts,
            resume=prepared.resume,
            gpus=gpus,
            wait=wait,
            as_json=as_json,
        )
        raise typer.Exit(code)
    if prepared.resume is not None and prepared.resume[1].executor == "slurm":
        from llem_docker.execution.slurm.submit import ensure_idle
        from llem_docker.store.manifest import locked

        folder, prior = prepared.resume
        with locked(folder):  # no run folder may be emptied under a live task
            ensure_idle(folder, prior)
    from llem_docker.execution.loop import StudyInterrupted, execute_study

    try:
        outcome = execute_study(
            plan,
            study,
            settings,
            runners,
            console=out,
            as_json=as_json,
            resume=prepared.resume,
        )
    except StudyInterrupted as exc:
        outcome = exc.outcome
        err.print(
            f"[yellow]interrupted[/yellow]: partial results in {escape(str(outcome.study_dir))}"
        )
    if as_json:
        print(json.dumps(outcome.study_json, indent=2))
    if strict is None:  # a resumed study keeps its manifest's profile, and so its default
        strict = plan.validity.profile == "publication"
    code = outcome.exit_code
    if strict and code == 0:
        from llem_docker.cli.validate import strict_code

        code = strict_code(outcome.study_dir, quiet=as_json)
    raise typer.Exit(code)


def _show_plan(
    plan: StudyPlan, runners: dict[str, RunnerSpec], settings: Settings, as_json: bool
) -> None:
    if as_json:
        print_plan_json(plan, runners)
        return
    config_gap = float(settings.execution.config_gap_seconds)
    cycle_gap = float(settings.execution.cycle_gap_seconds)
    timeout = float(settings.execution.experiment_timeout_seconds)
    est = estimate(plan, runners, config_gap, cycle_gap, timeout)
    print_plan(out, plan, runners, est, config_gap, cycle_gap)
    if plan.most_runs > CONFIRM_ABOVE:
        out.print(f"[yellow]more than {CONFIRM_ABOVE} runs: a real run needs --yes[/yellow]")


@app.command()
def config(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    runner: str | None = typer.Option(None, "--runner", help="as for `run`"),
) -> None:
    """Print every resolved setting and where it came from."""
    settings = Settings.load(cli_runner=runner)
    rows: list[tuple[str, Any, str]] = [
        (
            "user config file",
            str(settings.config_path),
            settings.config_path_rule + ("" if settings.config_path.exists() else " (not present)"),
        ),
    ]
    for backend, spec in settings.runners().items():
        rows.append((f"runners.{backend}", spec.label, spec.source))
        if spec.kind == "docker":
            rows.append((f"images.{backend}", spec.target, spec.target_source or spec.source))
    rows += [(k, settings.shown(k), settings.source(k)) for k in settings.scalar_keys()]
    rows.append(
        (
            "env HF_TOKEN",
            "set (hidden)" if settings.env.get("HF_TOKEN") else "not set",
            "environment",
        )
    )
    if as_json:
        print(json.dumps([{"key": k, "value": v, "source": s} for k, v, s in rows], indent=2))
        return
    table = Table(title="llem-docker settings", title_justify="left")
    for col in ("key", "value", "source"):
        table.add_column(col)
    for k, v, s in rows:
        table.add_row(k, str(v), s)
    out.print(table)


@app.command()
def doctor(
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    gpu_probe: bool = typer.Option(
        True, "--gpu-probe/--no-gpu-probe", help="start a container with GPUs to test them"
    ),
    backends: str = typer.Option(
        ",".join(BACKENDS), "--backends", help="the backends whose runner and image to check"
    ),
) -> None:
    """Check that this machine can run studies; a fix for every failing row."""
    from dataclasses import asdict

    from llem_docker.cli.doctor import run_checks

    chosen = tuple(b.strip() for b in backends.split(",") if b.strip())
    unknown = [b for b in chosen if b not in BACKENDS]
    if unknown or not chosen:
        raise ConfigError(
            f"unknown backend(s) {', '.join(unknown) or '(none given)'}",
            source="--backends",
            fix=f"use a comma-separated list of {', '.join(BACKENDS)}",
        )
    checks = run_checks(Settings.load(), gpu_probe=gpu_probe, backends=chosen)
    if as_json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        style = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
        table = Table(title="llem-docker doctor", title_justify="left")
        for col in ("check", "status", "detail", "fix"):
            table.add_column(col, overflow="fold")
        for c in checks:
            status = f"[{style[c.status]}]{c.status}[/]"
            table.add_row(c.name, status, escape(c.detail), escape(c.fix))
        out.print(table)
    raise typer.Exit(1 if any(c.status == "fail" for c in checks) else 0)


def _register_hpc() -> None:
    from llem_docker.cli.compare import compare
    from llem_docker.cli.hpc import collect, status
    from llem_docker.cli.models import models
    from llem_docker.cli.pack import pack
    from llem_docker.cli.report import report
    from llem_docker.cli.reproduce import reproduce
    from llem_docker.cli.validate import validate

    app.command()(status)
    app.command()(collect)
    app.command()(report)
    app.command()(validate)
    app.command()(pack)
    app.command()(reproduce)
    app.command()(compare)
    app.add_typer(models, name="models")


_register_hpc()


def _version(value: bool) -> None:
    if value:
        print(f"llem-docker {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, help="more detail on stderr (-v info, -vv debug)"
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="only errors and the requested output; no progress"
    ),
) -> None:
    """llem-docker: formal LLM inference energy benchmarks."""
    setup_logging(verbose, quiet)


def setup_logging(verbose: int, quiet: bool) -> None:
    """The standard `logging` tree under `llem_docker`, on stderr; --quiet also silences
    the progress output on stdout (errors and --json output still appear)."""
    from rich.logging import RichHandler

    level = (
        logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    )
    root = logging.getLogger("llem_docker")
    root.handlers[:] = [RichHandler(console=err, show_path=False, show_time=verbose >= 2)]
    root.setLevel(level)
    root.propagate = False
    out.quiet = quiet


def _sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler, `kill`) stops a study the way Ctrl+C does: runs recorded, the
    running container stopped and removed."""
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        app(standalone_mode=True)
    except LlemError as exc:
        err.print(
            f"[bold red]error:[/bold red] {escape(exc.render())}", highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # a second Ctrl+C while the first was being handled
        err.print("[yellow]interrupted again: exiting at once[/yellow]")
        sys.exit(130)


if __name__ == "__main__":
    main()

"""`llem-docker run STUDY --executor slurm`: prepare the study folder exactly as a local run
would, then submit its runs as one `sbatch --array` job (tasks in plan order; at most
`max_parallel` at once) and record the submission in the manifest.

With `--resume`, only the runs without a result are prepared and submitted again, as a new
submission of the same study folder; that refuses while any of its tasks are still queued or
running.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import ConfigError, LlemError
from llem_docker.execution.models import check_models, stage_models
from llem_docker.execution.prepare import (
    hub_cache,
    make_study_dir,
    measurement_settings,
    prepare_run,
    resolve_datasets,
)
from llem_docker.execution.resume import reopen
from llem_docker.execution.runners import Runner, make_runner
from llem_docker.execution.slurm import scheduler
from llem_docker.execution.slurm.script import SlurmOptions, render_script
from llem_docker.execution.slurm.status import refresh_locked
from llem_docker.store.layout import StudyDir
from llem_docker.store.manifest import Manifest, Submission, ThermalGaps, locked, utc_now
from llem_docker.study.model import StudyConfig
from llem_docker.study.plan import StudyPlan
from llem_harness.host_api import RunnerInfo


class SlurmSubmitError(LlemError):
    """sbatch refused the job."""


class _Recorded:
    """A runner this host cannot reach (a Docker engine that lives on the compute nodes): it
    only names the image for experiment.json."""

    def __init__(self, spec: RunnerSpec) -> None:
        self.kind, self.spec = spec.kind, spec

    def info(self) -> RunnerInfo:
        return RunnerInfo(type=self.spec.kind, image=self.spec.target, image_digest=None)


def _submit_runner(spec: RunnerSpec, settings: Settings, warn: Console) -> Runner | _Recorded:
    if spec.kind in ("apptainer", "singularity"):
        from llem_docker.execution.runners.apptainer import ApptainerRunner

        return ApptainerRunner.from_settings(spec, settings, check=False)
    if spec.kind == "docker":
        from llem_docker.execution.runners.docker_engine import DockerUnavailable

        try:
            return make_runner(spec, settings)
        except DockerUnavailable as exc:
            warn.print(
                f"[yellow]warning:[/yellow] no Docker engine here ({escape(exc.render())}); "
                "the image is not checked and its digest is not recorded before the tasks run"
            )
            return _Recorded(spec)
    return make_runner(spec, settings)


def ensure_idle(study_dir: Path, prior: Manifest) -> None:
    """Refuse to touch a SLURM study's run folders while any of its tasks may still run.
    The caller holds the manifest lock."""
    if prior.executor != "slurm":
        return
    active = refresh_locked(study_dir).active
    if active:
        jobs = ", ".join(s.job_id or "?" for s in prior.submissions)
        raise ConfigError(
            f"{active} runs of this study are still queued or running (job {jobs})",
            source="--resume",
            fix=f"wait for them (`llem-docker status {study_dir}`), or cancel them with "
            "scancel, then resume",
        )


def submit_study(
    plan: StudyPlan,
    study: StudyConfig,
    settings: Settings,
    runners: dict[str, RunnerSpec],
    opts: SlurmOptions,
    *,
    console: Console,
    resume: tuple[Path, Manifest] | None = None,
    gpus: str | None = None,
) -> tuple[Path, Manifest]:
    if shutil.which("sbatch") is None:
        raise SlurmSubmitError(
            "`sbatch` is not on PATH, so nothing can be submitted. Fix: run this on a SLURM "
            "login node (or `module load slurm`), or drop --executor slurm to run here"
        )
    results = Path(str(settings.output.results_dir)).expanduser().resolve()
    where = resume[0].resolve() if resume else results
    if any(c.isspace() for c in str(where)):
        raise ConfigError(
            f"SLURM cannot write to a path with spaces ({where}): #SBATCH lines split on them",
            source=settings.source("output.results_dir"),
            key="output.results_dir",
            fix="choose a results folder whose path has no spaces",
        )
    warn = Console(stderr=True)
    backends = sorted(plan.counts())
    specs = {b: runners[b] for b in backends}
    live = {b: _submit_runner(spec, settings, warn) for b, spec in specs.items()}
    datasets = resolve_datasets(plan, study, hub_cache(settings))
    if resume is None:
        study_dir = make_study_dir(results, plan.name, study.source)
        study_file = str(Path(study.source).resolve()) if study.source else None
        with locked(study_dir):
            gaps = ThermalGaps.now(settings)
            manifest = Manifest.new(plan, study_dir.name, study_file, specs, gaps)
            todo = [r.run_id for r in plan.runs]
            return _submit(plan, study, settings, live, datasets, opts, console, study_dir,
                           manifest, todo, gpus)  # fmt: skip
    study_dir = resume[0].resolve()
    with locked(study_dir):
        ensure_idle(study_dir, Manifest.read(study_dir))
        gaps = ThermalGaps.now(settings)
        manifest, _, todo = reopen(study_dir, Manifest.read(study_dir), specs, gaps)
        return _submit(plan, study, settings, live, datasets, opts, console, study_dir,
                       manifest, todo, gpus)  # fmt: skip


def _submit(
    plan: StudyPlan,
    study: StudyConfig,
    settings: Settings,
    live: dict[str, Runner | _Recorded],
    datasets: dict[str, Path],
    opts: SlurmOptions,
    console: Console,
    study_dir: Path,
    manifest: Manifest,
    todo: list[str],
    gpus: str | None,
) -> tuple[Path, Manifest]:
    measurement = measurement_settings(settings)
    if not todo:
        raise ConfigError(
            "every run of this study already has a result: nothing to submit",
            source="--resume",
            fix=f"assemble it with `llem-docker collect {study_dir}`",
        )
    manifest.executor = "slurm"
    wanted = set(todo)
    models = stage_models(check_models(plan, study, settings), settings)
    for run in plan.runs:
        if run.run_id in wanted:
            prepare_run(study_dir, plan, run, live, measurement, datasets, models)
    number = len(manifest.submissions) + 1
    layout = StudyDir(study_dir)
    layout.slurm.mkdir(exist_ok=True)
    runs_file = layout.submission(number, "runs")
    script = layout.submission(number, "sbatch")
    ordered = [r.run_id for r in plan.runs if r.run_id in wanted]
    runs_file.write_text("\n".join(ordered) + "\n", encoding="utf-8")
    script.write_text(
        render_script(
            opts,
            study_dir=study_dir,
            study_id=manifest.study_id,
            design_hash=manifest.design_hash,
            runs_file=runs_file,
            n_tasks=len(ordered),
            submission=number,
        ),
        encoding="utf-8",
    )
    sub = Submission(
        script=str(script.relative_to(study_dir)),
        runs_file=runs_file.name,
        run_ids=ordered,
        submitted_at=utc_now(),
        options=opts.record(),
        timeout_s=float(settings.execution.experiment_timeout_seconds),
        config_gap_s=float(settings.execution.config_gap_seconds),
        cycle_gap_s=float(settings.execution.cycle_gap_seconds),
        gpus=gpus,
    )
    manifest.submissions.append(sub)
    manifest.write(study_dir)
    try:
        sub.job_id = scheduler.sbatch(str(script), cwd=str(study_dir))
    except (RuntimeError, OSError) as exc:
        manifest.state = "failed"
        manifest.write(study_dir)
        again = f"llem-docker run {study.source or 'STUDY'} --executor slurm --resume {study_dir}"
        raise SlurmSubmitError(
            f"sbatch refused {script}: {exc}. Nothing was submitted; the study folder "
            f"{study_dir} is prepared. Fix the cause (partition, account, --time, "
            f"--gpus-per-run), then submit it with `{again}`"
        ) from None
    for i, run_id in enumerate(ordered):
        entry = manifest.entry(run_id)
        entry.state, entry.job = "queued", f"{sub.job_id}_{i}"
    manifest.state = "running"
    manifest.write(study_dir)
    console.print(
        f"submitted SLURM job {sub.job_id}: {len(ordered)} array tasks "
        f"(at most {opts.max_parallel} at once) → {escape(str(study_dir))}",
        highlight=False,
    )
    return study_dir, manifest

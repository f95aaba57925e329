"""The `sbatch --array` script of one submission, and the options behind it.

Each array task runs `python -m llem_docker.execution.slurm.task STUDY_DIR RUNS_FILE`: line
$SLURM_ARRAY_TASK_ID of RUNS_FILE names its run, which it runs through the backend's runner
(apptainer on clusters; docker or local where the site allows). The script holds no secret:
sbatch passes the submitting shell's environment (HF_TOKEN included) to the tasks.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llem_docker.config.settings import Settings
from llem_docker.errors import ConfigError
from llem_docker.store.layout import StudyDir
from llem_harness.host_api import __version__

SLACK_S = 300.0  # per task, on top of the experiment timeout and the gap: start-up, teardown
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    account: str | None = None
    time: str | None = None  # sbatch --time; None: derived from the timeout and gaps
    gpus_per_run: int = 1
    max_parallel: int = 1
    exclusive: bool = True
    python: str = sys.executable
    setup: tuple[str, ...] = ()
    sbatch_args: tuple[str, ...] = ()

    def record(self) -> dict[str, Any]:
        """What the manifest keeps of them."""
        data = asdict(self)
        data["setup"], data["sbatch_args"] = list(self.setup), list(self.sbatch_args)
        return data


def time_to_s(text: str) -> float | None:
    """sbatch --time (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S) in seconds; None for UNLIMITED."""
    if text.strip().upper() in ("UNLIMITED", "INFINITE", "0"):  # 0: no limit, to sbatch
        return None
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(text)
    d, a, b, c = (int(g) if g else 0 for g in m.groups())
    if m.group(1):  # D-H[:M[:S]]
        return d * 86400 + a * 3600 + b * 60 + c
    if m.group(4):  # H:M:S
        return a * 3600 + b * 60 + c
    return a * 60 + b  # M or M:S


def format_time(seconds: float) -> str:
    s = int(-(-seconds // 60) * 60)  # whole minutes, rounded up
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    return (f"{d}-" if d else "") + f"{h:02d}:{rest // 60:02d}:00"


def options_from(
    settings: Settings,
    *,
    partition: str | None,
    account: str | None,
    time: str | None,
    gpus_per_run: int | None,
    max_parallel: int | None,
    needed_s: float,
) -> SlurmOptions:
    """CLI flags over user config `slurm:`; `--time` checked against what a task needs."""
    cfg = settings.user.slurm
    _no_secrets(settings, "setup", cfg.setup)
    _no_secrets(settings, "sbatch_args", cfg.sbatch_args)
    chosen = time if time is not None else cfg.time
    source = "--time" if time is not None else f"`slurm.time` in {settings.config_path}"
    if chosen is not None:
        try:
            limit = time_to_s(chosen)
        except ValueError:
            raise ConfigError(
                f"`{chosen}` is not a SLURM time limit",
                source=source,
                fix="use minutes (90), H:M:S (01:30:00) or D-H:M:S (1-00:00:00)",
            ) from None
        if limit is not None and limit < needed_s:
            raise ConfigError(
                f"the time limit {chosen} is shorter than one run may take "
                f"({format_time(needed_s)}: the experiment timeout plus the longest gap "
                f"plus {SLACK_S:g} s)",
                source=source,
                fix="raise it, or lower execution.experiment_timeout_seconds",
            )
    return SlurmOptions(
        partition=partition if partition is not None else cfg.partition,
        account=account if account is not None else cfg.account,
        time=chosen or format_time(needed_s),
        gpus_per_run=gpus_per_run if gpus_per_run is not None else cfg.gpus_per_run,
        max_parallel=max_parallel if max_parallel is not None else cfg.max_parallel,
        exclusive=cfg.exclusive,
        python=cfg.python or sys.executable,
        setup=tuple(cfg.setup),
        sbatch_args=tuple(cfg.sbatch_args),
    )


def _no_secrets(settings: Settings, key: str, lines: list[str]) -> None:
    """The script is kept in the results folder: no line of it may carry a secret."""
    from llem_docker.execution.runners.container import PASSTHROUGH_ENV

    for i, line in enumerate(lines):
        named = [n for n in ("HF_TOKEN", "TOKEN", "SECRET", "PASSWORD") if n in line.upper()]
        if named or "hf_" in line:
            raise ConfigError(
                "this line looks like it sets a secret, and the script is kept with the results",
                source=settings.config_path,
                key=f"slurm.{key}[{i}]",
                fix=f"remove it: sbatch passes {', '.join(PASSTHROUGH_ENV[:2])} and the rest "
                "from the submitting shell's environment (its default --export=ALL)",
            )


def job_name(study_id: str) -> str:
    return f"llem-{study_id}"


def render_script(
    opts: SlurmOptions,
    *,
    study_dir: Path,
    study_id: str,
    design_hash: str,
    runs_file: Path,
    n_tasks: int,
    submission: int,
) -> str:
    out = StudyDir(study_dir).submission_output(submission)
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name(study_id)}",
        f"#SBATCH --array=0-{n_tasks - 1}%{opts.max_parallel}",
        f"#SBATCH --output={out}",
        f"#SBATCH --time={opts.time}",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        "#SBATCH --no-requeue",  # a measurement is not silently repeated; resubmit instead
    ]
    if opts.exclusive:
        lines.append("#SBATCH --exclusive")
    if opts.gpus_per_run:
        lines.append(f"#SBATCH --gres=gpu:{opts.gpus_per_run}")
    if opts.partition:
        lines.append(f"#SBATCH --partition={opts.partition}")
    if opts.account:
        lines.append(f"#SBATCH --account={opts.account}")
    lines += [f"#SBATCH {arg}" for arg in opts.sbatch_args]
    lines += [
        "",
        f"# llem-docker {__version__}: study {study_id} (design {design_hash[:12]}), "
        f"submission {submission}.",
        "# Each array task runs one run of the study through its backend's runner, after the",
        "# study's thermal gap, and records its outcome in runs/<run>/slurm-task.json.",
        "# `llem-docker status <study folder>` reads them back; `llem-docker collect` assembles.",
        "set -euo pipefail",
        *opts.setup,
        f"exec {shlex.quote(opts.python)} -m llem_docker.execution.slurm.task "
        f"{shlex.quote(str(study_dir))} {shlex.quote(str(runs_file))}",
        "",
    ]
    return "\n".join(lines)

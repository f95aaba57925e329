"""One way into a study, for the command line and the library API alike: `prepare_study`
settles the execution (profile, cycles, order, or the manifest of a study being resumed),
loads the settings, checks the plan's size, expands it, checks a resumed design, resolves the
runners and checks the GPU needs of the plan. What follows (the dry run, SLURM, the inline
loop) takes the PreparedStudy as it is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.errors import ConfigError
from llem_docker.execution.gpu_check import check_quantization
from llem_docker.execution.models import check_models
from llem_docker.execution.preflight import check_inputs
from llem_docker.execution.prepare import hub_cache
from llem_docker.execution.quality_check import check_quality
from llem_docker.execution.resume import check_same_design, read_prior
from llem_docker.execution.trace_check import check_traces
from llem_docker.store.manifest import Manifest
from llem_docker.study.model import StudyConfig
from llem_docker.study.plan import StudyPlan, check_size, plan_study
from llem_docker.study.profiles import CLI_BASE, effective_execution, gaps_off, policy_for


@dataclass(frozen=True)
class PreparedStudy:
    study: StudyConfig
    plan: StudyPlan
    settings: Settings
    runners: dict[str, RunnerSpec]
    resume: tuple[Path, Manifest] | None  # the folder being resumed and its manifest

    @property
    def prior(self) -> Manifest | None:
        return None if self.resume is None else self.resume[1]


def prepare_study(
    study: StudyConfig,
    *,
    source: str | Path,
    runner: str | None = None,
    results_dir: str | Path | None = None,
    profile: str | None = None,
    cycles: int | None = None,
    order: str | None = None,
    no_gaps: bool = False,
    gpus: str | None = None,
    resume: Path | None = None,
    max_runs: int | None = None,
    base: str | None = CLI_BASE,
    check_gpus: bool = True,
    on_size: Callable[[int, int], None] | None = None,
) -> PreparedStudy:
    """Everything before the first run, each check a clear error. `source` names the study
    in messages; `base` is the profile under the study's own execution (None for the library
    API: ExecutionConfig's defaults); `check_gpus` is off for SLURM (the nodes' GPUs are
    checked by the harness); `on_size(total, limit)` hears the run count before the study is
    expanded, which takes a moment for a large one."""
    prior = None
    if resume is not None:
        if cycles is not None or order is not None:
            raise ConfigError(
                "--cycles and --order cannot change a study that is being resumed",
                source="--resume",
                fix="drop them: the resumed study keeps the execution its manifest recorded",
            )
        prior = read_prior(resume)
        execution, validity = prior.execution, prior.validity or policy_for(None, CLI_BASE)
    else:
        execution = effective_execution(study, profile, cycles, order, base=base)
        validity = policy_for(profile, base)
    settings = Settings.load(
        cli_runner=runner,
        results_dir=None if results_dir is None else str(results_dir),
        no_gaps=gaps_off(profile, no_gaps),
        gpus=gpus,
    )
    limit, where = max_runs, "--max-runs"
    if limit is None:
        limit, where = int(settings.execution.max_runs), str(settings.config_path)
    total = check_size(study, execution.n_cycles, limit, where=where)
    if on_size is not None:
        on_size(total, limit)
    plan = plan_study(study, execution, max_runs=limit, limit_source=where, validity=validity)
    if prior is not None:
        check_same_design(prior, plan, source)
    runners = settings.runners(sorted(plan.counts()))
    check_models(plan, study, settings)  # GGUF files: before anything runs, dry run included
    check_quality(plan, study)  # the references quality is scored against
    check_traces(plan, study)  # serving.arrival: trace: the trace files, read as a run will
    check_inputs(plan, study, hub_cache(settings))  # the size keys, and every dataset
    if check_gpus:
        check_quantization(plan, settings, runners, source)
    return PreparedStudy(
        study, plan, settings, runners, None if resume is None or prior is None else (resume, prior)
    )

"""What the host can check before the first run, in the dry run and in `run` alike: every
size key against a documented limit, and every dataset the study names (each line of a local
JSONL file, read as a run reads it, streamed; a hub dataset's presence in the local cache),
and a model named by a local path.
GGUF files, quality's references and serving traces have their own checks beside this one
(models.py, quality_check.py, trace_check.py); all run from `prepare_study`.

The limits keep a typo (a prompt count in the billions) from being accepted and then grinding
until the run's timeout; each is far above any study that finishes (README, "Size limits").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llem_docker.errors import ConfigError
from llem_docker.execution import hf_datasets
from llem_docker.study.model import StudyConfig
from llem_docker.study.plan import ExperimentPoint, StudyPlan
from llem_harness.host_api import ExperimentConfig, count_prompts, is_gguf


@dataclass(frozen=True)
class Limit:
    key: str
    most: float
    what: str


MAX_PROMPTS = Limit("n_prompts", 1_000_000, "prompts a pass sends")
MAX_REQUESTS = Limit("serving.n_requests", 1_000_000, "requests a serving run sends")
MAX_TOKENS = Limit("max_input_tokens", 1_048_576, "tokens of a prompt (past any model's context)")
MAX_OUTPUT = Limit("max_output_tokens", 1_048_576, "tokens of a response")
MAX_PASS = Limit(
    "n_prompts × (max_input_tokens + max_output_tokens)", 1_000_000_000, "tokens of one pass"
)
MAX_DURATION = Limit("serving.duration_s", 86_400, "seconds a serving run sends (a day)")
MAX_SENT = Limit(
    "serving.duration_s × the request rate", 1_000_000, "requests a serving run sends"
)  # the highest rate of a capacity search's range
LIMITS = (MAX_PROMPTS, MAX_REQUESTS, MAX_TOKENS, MAX_OUTPUT, MAX_PASS, MAX_DURATION, MAX_SENT)


def check_inputs(plan: StudyPlan, study: StudyConfig, hub_cache: Path) -> None:
    """Every size key, then every dataset: the first problem is a ConfigError naming the
    file, the key (or the dataset's line) and the fix."""
    for point in plan.points:
        _check_sizes(point, study.source)
    check_datasets(plan, study, hub_cache)
    check_model_paths(plan, study)


PATH_LIKE = ("/", "./", "../", "~")


def check_model_paths(plan: StudyPlan, study: StudyConfig) -> None:
    """A model named by a local path (`/…`, `./…`, `../…`, `~…`; not a GGUF file, which
    models.py checks) must exist: as given, or relative to the study file's folder."""
    for model in dict.fromkeys(p.config.model for p in plan.points):
        if not model.startswith(PATH_LIKE) or is_gguf(model):
            continue
        path, beside = Path(model).expanduser(), study.path_of(model)
        if path.exists() or beside.exists():
            continue
        raise ConfigError(
            f"model `{model}` names a local path, and nothing is there (looked for {path}"
            + ("" if beside == path else f" and {beside}")
            + ")",
            source=study.source,
            key="model",
            fix="give the folder that holds the model's config.json and weights, or a Hugging "
            "Face model id (org/name) from the local hub cache",
        )


def _sizes(cfg: ExperimentConfig) -> list[tuple[Limit, float]]:
    out: list[tuple[Limit, float]] = [
        (MAX_PROMPTS, cfg.n_prompts),
        (MAX_TOKENS, cfg.max_input_tokens),
        (MAX_OUTPUT, cfg.max_output_tokens),
        (MAX_PASS, cfg.n_prompts * (cfg.max_input_tokens + cfg.max_output_tokens)),
    ]
    if cfg.scenario == "serving":
        opts = cfg.serving_options()
        if opts.n_requests is not None:
            out.append((MAX_REQUESTS, opts.n_requests))
        if opts.duration_s is not None:
            out.append((MAX_DURATION, opts.duration_s))
            top = opts.search.rate[1] if opts.search is not None else opts.rate
            if top is not None:  # the requests the duration implies at the (highest) rate
                out.append((MAX_SENT, opts.duration_s * top))
    return out


def _check_sizes(point: ExperimentPoint, source: str | None) -> None:
    for limit, value in _sizes(point.config):
        if value <= limit.most:
            continue
        swept = ", ".join(f"{k}={v}" for k, v in point.swept.items())
        raise ConfigError(
            f"{limit.key} is {value:,.0f}"
            + (f" for {swept}" if swept else "")
            + f", above the limit of {limit.most:,.0f} {limit.what}: no run would finish "
            "before its timeout",
            source=source,
            key=limit.key.split(" ")[0],
            fix="lower it (a study that needs more should be split into several); the "
            "limits are listed in the README, under `Size limits`",
        )


def named_file(name: str, study: StudyConfig, *, key: str, kind: str) -> Path:
    """A file the study names under `key` (`kind`: "dataset file", "trace file"), resolved
    against the study file's folder; a missing one is a ConfigError."""
    path = study.path_of(name)
    if not path.is_file():
        raise ConfigError(
            f"{kind} `{name}` does not exist (looked for {path})",
            source=study.source,
            key=key,
            fix="give a path relative to the study file's folder, or an absolute path",
        )
    return path


def dataset_path(name: str, study: StudyConfig) -> Path:
    """A `.jsonl` dataset resolved against the study file's folder, or a ConfigError."""
    return named_file(name, study, key="dataset", kind="dataset file")


def check_datasets(plan: StudyPlan, study: StudyConfig, hub_cache: Path) -> None:
    """Each dataset once: a local JSONL file line by line, as the harness will read it; a
    hub dataset's data files in the local cache (runs are offline)."""
    seen: set[str] = set()
    for point in plan.points:
        name = point.config.dataset
        if name in seen:
            continue
        seen.add(name)
        if name.startswith(hf_datasets.PREFIX):
            hf_datasets.locate(name, hub_cache, study.source)
        elif name.endswith(".jsonl"):
            path = dataset_path(name, study)
            try:
                count_prompts(path)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    str(exc).splitlines()[0],
                    source=study.source,
                    key="dataset",
                    fix="make every line one JSON object with a non-empty `prompt` (or "
                    "`text`) string, or a `conversations`/`messages` conversation whose first "
                    "user turn is one (blank lines are skipped)",
                ) from None

"""Study expansion: the count rule, scoped axes, cycle orders, the design hash."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llem_docker.study.loader import load_study
from llem_docker.study.model import Axis, ExecutionConfig, StudyConfig
from llem_docker.study.plan import count_runs, design_hash, expand_points, plan_study, schedule
from tests.conftest import REPO

DESIGN = REPO / "examples" / "design-example.yaml"


def test_design_example_counts() -> None:
    plan = plan_study(load_study(DESIGN))
    assert len(plan.points) == 13
    assert len(plan.runs) == 39
    assert plan.counts() == {"pytorch": (7, 21), "vllm": (6, 18)}


def test_scoped_axes_only_on_their_backend() -> None:
    plan = plan_study(load_study(DESIGN))
    for p in plan.points:
        if p.origin != "grid":
            continue
        keys = set(p.swept)
        if p.config.backend == "pytorch":
            assert "pytorch.attn_implementation" in keys and "vllm.max_num_seqs" not in keys
            assert p.config.vllm is None and p.config.pytorch is not None
        else:
            assert "vllm.max_num_seqs" in keys and "pytorch.attn_implementation" not in keys
            assert p.config.pytorch is None and p.config.vllm is not None
    vllm_values = {p.config.vllm.max_num_seqs for p in plan.points if p.config.vllm}
    assert vllm_values == {64, 256}


def test_explicit_experiment_merges_base_fields() -> None:
    plan = plan_study(load_study(DESIGN))
    qwen = [p for p in plan.points if p.origin == "experiments[0]"]
    assert len(qwen) == 1
    cfg = qwen[0].config
    assert (cfg.model, cfg.batch_size, cfg.max_output_tokens, cfg.n_prompts) == (
        "Qwen/Qwen2.5-7B",
        1,
        128,
        100,
    )


def test_design_hash_ignores_execution_and_order(tmp_path: Path) -> None:
    text = DESIGN.read_text()
    a = plan_study(load_study(DESIGN))
    other = tmp_path / "other.yaml"
    other.write_text(
        text.replace("n_cycles: 3", "n_cycles: 5").replace(
            "batch_size: [1, 4, 8]", "batch_size: [8, 1, 4]"
        )
    )
    b = plan_study(load_study(other))
    assert a.design_hash == b.design_hash
    changed = tmp_path / "changed.yaml"
    changed.write_text(text.replace("n_prompts: 100", "n_prompts: 50"))
    assert plan_study(load_study(changed)).design_hash != a.design_hash


def test_plain_experiment_file_is_a_study_of_one(tmp_path: Path) -> None:
    f = tmp_path / "one.yaml"
    f.write_text("model: llem/tiny-llama\nbackend: pytorch\nweights: dummy\n")
    plan = plan_study(load_study(f))
    assert len(plan.runs) == 1 and plan.name == "one"


def test_library_default_is_one_cycle(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("model: m\nbackend: pytorch\nsweep: {batch_size: [1, 2]}\n")
    assert len(plan_study(load_study(f)).runs) == 2


def test_json_plan_round_trips() -> None:
    from llem_docker.config.settings import Settings
    from llem_docker.study.view import plan_json

    plan = plan_study(load_study(DESIGN))
    runners = Settings.load(env={}).runners(["pytorch", "vllm"])
    data = json.loads(json.dumps(plan_json(plan, runners)))
    assert [r["index"] for r in data] == list(range(1, 40))
    assert {"index", "cycle", "backend", "config", "runner"} <= set(data[0])


# -- property tests -----------------------------------------------------------------------

backend_sets = st.lists(
    st.sampled_from(["pytorch", "vllm", "tensorrt"]), min_size=1, max_size=3, unique=True
)


@st.composite
def studies(draw: st.DrawFn) -> StudyConfig:
    backends = draw(backend_sets)
    axes = []
    n_universal = draw(st.integers(0, 2))
    for key in ["batch_size", "max_output_tokens"][:n_universal]:
        vals = draw(st.lists(st.integers(1, 64), min_size=1, max_size=4, unique=True))
        axes.append(Axis(key, None, (key,), tuple(vals)))
    scoped = {
        "pytorch": ("attn_implementation", ["sdpa", "eager", "flash_attention_2"]),
        "vllm": ("max_num_seqs", [8, 16, 64, 256]),
        "tensorrt": ("max_batch_size", [8, 16, 32]),
    }
    for b in backends:
        if draw(st.booleans()):
            field, choices = scoped[b]
            vals = draw(
                st.lists(st.sampled_from(choices), min_size=1, max_size=len(choices), unique=True)
            )
            axes.append(Axis(f"{b}.{field}", b, (b, field), tuple(vals)))
    n_exp = draw(st.integers(0, 2))
    experiments = tuple({"backend": backends[0], "n_prompts": 1000 + i} for i in range(n_exp))
    return StudyConfig(
        name="s",
        base={"model": "m"},
        backends=tuple(backends),
        axes=tuple(axes),
        experiments=experiments,
    )


@settings(max_examples=60, deadline=None)
@given(
    study=studies(),
    n_cycles=st.integers(1, 4),
    order=st.sampled_from(["sequential", "interleaved", "shuffled"]),
)
def test_count_rule(study: StudyConfig, n_cycles: int, order: str) -> None:
    grid = bool(study.axes) or not study.experiments  # listed experiments alone: no grid
    expected = grid * sum(
        math.prod(len(a.values) for a in study.axes if a.backend is None)
        * math.prod(len(a.values) for a in study.axes if a.backend == b)
        for b in study.backends
    ) + len(study.experiments)
    plan = plan_study(study, ExecutionConfig(n_cycles=n_cycles, cycle_order=order))  # type: ignore[arg-type]
    assert len(plan.points) == expected
    assert count_runs(study, n_cycles) == len(plan.runs)
    assert len(plan.runs) == expected * n_cycles
    assert [r.index for r in plan.runs] == list(range(1, len(plan.runs) + 1))
    assert len({r.run_id for r in plan.runs}) == len(plan.runs)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 12), cycles=st.integers(1, 5), seed=st.integers(0, 2**32))
def test_cycle_order_shapes(n: int, cycles: int, seed: int) -> None:
    seq = schedule(n, cycles, "sequential", seed)
    assert seq == [(p, c) for p in range(n) for c in range(1, cycles + 1)]
    inter = schedule(n, cycles, "interleaved", seed)
    assert inter == [(p, c) for c in range(1, cycles + 1) for p in range(n)]
    shuf = schedule(n, cycles, "shuffled", seed)
    assert Counter(shuf) == Counter(seq)  # every (point, cycle) exactly once
    for c in range(cycles):  # each cycle is a block holding every point once, cycles in order
        block = shuf[c * n : (c + 1) * n]
        assert {cy for _, cy in block} == {c + 1}
        assert sorted(p for p, _ in block) == list(range(n))
    assert shuf == schedule(n, cycles, "shuffled", seed)  # the seed reproduces it


def test_shuffle_seed_is_recorded_and_derived_from_design() -> None:
    study = load_study(DESIGN)
    a = plan_study(study, ExecutionConfig(n_cycles=3, cycle_order="shuffled"))
    b = plan_study(study, ExecutionConfig(n_cycles=3, cycle_order="shuffled"))
    assert a.execution.seed is not None and a.execution.seed == int(a.design_hash[:8], 16)
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]
    c = plan_study(study, ExecutionConfig(n_cycles=3, cycle_order="shuffled", seed=7))
    assert c.execution.seed == 7


def test_design_hash_is_order_independent() -> None:
    pts = expand_points(load_study(DESIGN))
    assert design_hash(pts) == design_hash(list(reversed(pts)))


def test_duplicate_point_is_rejected(tmp_path: Path) -> None:
    from llem_docker.errors import ConfigError

    f = tmp_path / "dup.yaml"
    f.write_text(
        "model: m\nbackend: pytorch\nsweep: {batch_size: [1, 2]}\n"
        "experiments:\n  - {batch_size: 2}\n"
    )
    with pytest.raises(ConfigError, match="identical"):
        plan_study(load_study(f))


def test_listed_experiments_without_a_sweep_are_the_whole_study(tmp_path: Path) -> None:
    """The top level gives only shared defaults: two listed experiments are two configs,
    and a top level without `model` is fine when every experiment names its own."""
    f = tmp_path / "listed.yaml"
    f.write_text(
        "backend: pytorch\nprecision: fp32\nexperiments:\n"
        "  - {model: a/one, batch_size: 1}\n  - {model: b/two, batch_size: 4}\n"
    )
    plan = plan_study(load_study(f), ExecutionConfig(n_cycles=2))
    assert [p.origin for p in plan.points] == ["experiments[0]", "experiments[1]"]
    assert [(p.config.model, p.config.batch_size) for p in plan.points] == [
        ("a/one", 1),
        ("b/two", 4),
    ]
    assert {p.config.precision for p in plan.points} == {"fp32"}
    assert len(plan.runs) == 4


def test_listed_experiment_missing_a_field_names_the_experiment(tmp_path: Path) -> None:
    from llem_docker.errors import ConfigError

    f = tmp_path / "listed.yaml"
    f.write_text("backend: pytorch\nexperiments:\n  - {model: a/one}\n  - {batch_size: 4}\n")
    with pytest.raises(ConfigError) as info:
        load_study(f)
    assert "`experiments[1].model`" in str(info.value) and "line 4" in str(info.value)


def test_with_a_sweep_the_grid_and_the_listed_experiments_both_run() -> None:
    plan = plan_study(load_study(DESIGN))
    origins = Counter("grid" if p.origin == "grid" else "listed" for p in plan.points)
    assert origins == {"grid": 12, "listed": 1}


def test_size_is_counted_before_anything_is_expanded(tmp_path: Path) -> None:
    """Nine axes of ten values: 10^9 points, refused from the axis lengths in well under a
    second, with the count, each axis's size and the fix."""
    import time

    from llem_docker.errors import ConfigError

    axes = [
        "batch_size",
        "n_prompts",
        "max_input_tokens",
        "max_output_tokens",
        "random_seed",
        "warmup_max_runs",
        "warmup_cv_threshold",
        "decoding.temperature",
        "decoding.top_p",
    ]
    values = {
        "warmup_max_runs": list(range(11, 21)),
        "warmup_cv_threshold": [i / 100 for i in range(1, 11)],
        "decoding.temperature": [i / 10 for i in range(1, 11)],
        "decoding.top_p": [i / 10 for i in range(1, 11)],
    }
    sweep = "".join(f"  {a}: {values.get(a, list(range(1, 11)))}\n" for a in axes)
    f = tmp_path / "huge.yaml"
    f.write_text("model: m\nbackend: pytorch\nsweep:\n" + sweep)
    t0 = time.perf_counter()
    study = load_study(f)
    assert count_runs(study, 3) == 3 * 10**9
    with pytest.raises(ConfigError) as info:
        plan_study(study, ExecutionConfig(n_cycles=3), max_runs=100_000)
    assert time.perf_counter() - t0 < 1.0
    msg = str(info.value)
    assert "3,000,000,000 runs" in msg and "batch_size 10" in msg and "decoding.top_p 10" in msg
    assert "--max-runs" in msg and "execution.max_runs" in msg
    small = plan_study(study.model_copy(update={"axes": study.axes[:2]}), max_runs=100)
    assert len(small.runs) == 100  # at the limit is allowed


def test_the_library_api_keeps_the_same_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llem_docker
    from llem_docker.errors import ConfigError

    (tmp_path / "c.yaml").write_text("execution: {max_runs: 3}\n")
    monkeypatch.setenv("LLEM_CONFIG", str(tmp_path / "c.yaml"))
    study = {"name": "x", "model": "m", "backend": "pytorch", "sweep": {"batch_size": [1, 2, 3, 4]}}
    with pytest.raises(ConfigError, match=r"4 runs .* limit of 3"):
        llem_docker.run_study(study, runner="local", results_dir=tmp_path / "res")
    assert not (tmp_path / "res").exists()

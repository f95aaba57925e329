"""`serving.search` from the study file to the plan, the manifest and the dry run: what a
search may be combined with, how its probes are named and hashed, how it counts against the
run limit, and that SLURM refuses it with the way out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llem_docker.cli.hpc import refuse_searches
from llem_docker.config.settings import RunnerSpec
from llem_docker.errors import ConfigError
from llem_docker.execution.resume import check_same_design
from llem_docker.store.manifest import Manifest
from llem_docker.study.loader import load_study
from llem_docker.study.plan import plan_study
from tests.conftest import REPO
from tests.orchestrator.cliutil import invoke

EXAMPLE = REPO / "examples" / "capacity-search.yaml"
BASE = """name: cap
model: llem/tiny-llama
backend: vllm
scenario: serving
serving:
  arrival: constant
  duration_s: 3
"""


def study(tmp_path: Path, serving: str, extra: str = "") -> Path:
    path = tmp_path / "cap.yaml"
    path.write_text(BASE + serving + extra)
    return path


def test_a_search_plans_one_entry_per_cycle_and_its_probes_are_plain_runs(tmp_path: Path) -> None:
    path = study(
        tmp_path,
        "  slo: {ttft_ms: 40}\n  search: {rate: [10, 80], tolerance: 0.1}\n",
        "execution: {n_cycles: 2}\n",
    )
    plan = plan_study(load_study(path))
    assert len(plan.runs) == 2 and len(plan.searches) == 2 and plan.most_runs == 14
    search = plan.runs[0]
    assert search.search is not None and search.most_runs == 7
    probe = search.probe_run(3, 28.28)
    assert probe.run_id == f"{search.run_id}_p3" and probe.search is None
    opts = probe.point.config.serving_options()
    assert opts.request_rate == 28.28 and opts.search is None
    assert probe.point.swept == {"serving.request_rate": 28.28}
    plain = plan_study(load_study(study(tmp_path, "  slo: {ttft_ms: 40}\n  request_rate: 28.28\n")))
    assert probe.point.config_hash == plain.points[0].config_hash  # hashed as a plain run
    manifest = Manifest.new(plan, "cap_1", str(path), {"vllm": RunnerSpec("local", None, "t")})
    assert manifest.runs == [] and [s.search_id for s in manifest.searches] == [
        r.run_id for r in plan.runs
    ]
    entry = manifest.add_probe(probe)
    assert (entry.search, entry.probe, entry.request_rate) == (search.run_id, 3, 28.28)
    assert manifest.add_probe(probe) is entry and manifest.probes(search.run_id) == [entry]
    check_same_design(manifest, plan, path)  # a resumed search plans as before


@pytest.mark.parametrize(
    ("serving", "message"),
    [
        ("  slo: {ttft_ms: 40}\n  request_rate: 5\n  search: {rate: [1, 9]}\n",
         "serving.request_rate (5.0) is what serving.search finds"),
        ("  search: {rate: [1, 9]}\n", "add serving.slo.ttft_ms and/or serving.slo.tpot_ms"),
        ("  slo: {ttft_ms: 40}\n  search: {rate: [9, 1]}\n", "lowest first"),
        ("  slo: {ttft_ms: 40}\n  search: {rate: [0, 1]}\n", "both above 0"),
        ("  slo: {ttft_ms: 40}\n  search: {rate: [1, 9], attainment: 1.5}\n", "attainment"),
        ("  slo: {ttft_ms: 40}\n  search: {rate: [1, 9], probes: 1}\n", "probes"),
        ("  slo: {ttft_ms: 40}\n  search: {rate: [1, 9], speed: 2}\n", "speed"),
    ],
)  # fmt: skip
def test_a_search_that_cannot_run_is_refused_naming_the_key(
    tmp_path: Path, serving: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        plan_study(load_study(study(tmp_path, serving.replace("arrival: constant\n", ""))))
    assert message in str(err.value) and "serving" in str(err.value)


def test_a_trace_replay_cannot_be_searched(tmp_path: Path) -> None:
    path = tmp_path / "cap.yaml"
    path.write_text(
        BASE.replace("arrival: constant\n  duration_s: 3\n", "arrival: trace\n  trace: t.csv\n")
        + "  slo: {ttft_ms: 40}\n  search: {rate: [1, 9]}\n"
    )
    with pytest.raises(ConfigError, match="arrival: trace takes its rate from the trace"):
        plan_study(load_study(path))


def test_the_run_limit_counts_every_probe_a_search_may_take(tmp_path: Path) -> None:
    path = study(tmp_path, "  slo: {ttft_ms: 40}\n  search: {rate: [1, 1000]}\n")
    study_ = load_study(path)
    assert plan_study(study_, max_runs=10).most_runs == 10  # 10 probes: the default budget
    with pytest.raises(ConfigError) as err:
        plan_study(study_, max_runs=9)
    assert "up to 10 runs" in str(err.value) and "serving.search.probes" in str(err.value)


def test_slurm_refuses_a_search_and_says_how_to_run_it(tmp_path: Path) -> None:
    plan = plan_study(load_study(EXAMPLE))
    with pytest.raises(ConfigError) as err:
        refuse_searches(plan, EXAMPLE)
    text = str(err.value)
    assert "searches run inline only" in text and "salloc" in text
    assert "serving.request_rate" in text  # the array job's way: list the rates


def test_the_dry_run_counts_at_most_the_probes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    r = invoke(capsys, monkeypatch, "run", str(EXAMPLE), "--dry-run")
    assert r.code == 0, r.err
    assert "2 configs × 3 cycles = 6 capacity searches: at most 54 runs" in r.out
    assert "≤ 9 probes" in r.out
    r = invoke(capsys, monkeypatch, "run", str(EXAMPLE), "--dry-run", "--json")
    rows = json.loads(r.out)
    assert [row["search"] for row in rows] == [{"most_probes": 9}] * 6
    r = invoke(capsys, monkeypatch, "run", str(EXAMPLE), "--executor", "slurm", "--dry-run")
    assert r.code != 0 and "inline only" in r.err

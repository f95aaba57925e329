"""`llem-docker run --dry-run`: the table, the JSON plan, profiles and flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.orchestrator.cliutil import invoke

DESIGN = str(REPO / "examples" / "design-example.yaml")


def plan(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> list[dict[str, object]]:
    r = invoke(capsys, monkeypatch, "run", *args, "--dry-run", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert isinstance(data, list)
    return data


def test_dry_run_table(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    r = invoke(capsys, monkeypatch, "run", DESIGN, "--dry-run")
    assert r.code == 0, r.err
    assert "13 configs × 3 cycles = 39 runs" in r.out
    assert "pytorch: 7 configs / 21 runs" in r.out and "vllm: 6 configs / 18 runs" in r.out
    assert "pytorch.attn_implementation" in r.out and "vllm.max_num_seqs" in r.out
    assert "estimated wall time" in r.out and "gaps 46m" in r.out


def test_dry_run_counts_in_the_singular(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    study = str(REPO / "bench" / "h200_publication_pytorch.yaml")
    r = invoke(capsys, monkeypatch, "run", study, "--dry-run", "--profile", "quick")
    assert r.code == 0, r.err
    assert "1 config × 1 cycle = 1 run" in r.out and "(pytorch: 1 config / 1 run)" in r.out


def test_dry_run_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    runs = plan(capsys, monkeypatch, DESIGN)
    assert len(runs) == 39
    assert [r["cycle"] for r in runs[:14]] == [1] * 13 + [2]  # interleaved
    first = runs[0]
    assert first["runner"] == {
        "kind": "docker",
        "target": "llenergymeasure/pytorch:0.1.0",
        "spec": "docker:llenergymeasure/pytorch:0.1.0",
        "source": "default",
    }
    assert first["config"]["pytorch"]["attn_implementation"] == "sdpa"  # type: ignore[index]
    assert first["config"]["vllm"] is None  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "n_runs", "order"),
    [
        ((), 39, "interleaved"),
        (("--profile", "quick"), 13, "sequential"),
        (("--profile", "publication"), 65, "shuffled"),
        (("--cycles", "2"), 26, "interleaved"),
        (("--profile", "publication", "--cycles", "2"), 26, "shuffled"),
        (("--order", "sequential"), 39, "sequential"),
    ],
)
def test_profiles_and_flags(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    n_runs: int,
    order: str,
) -> None:
    runs = plan(capsys, monkeypatch, DESIGN, *args)
    assert len(runs) == n_runs
    n_cycles = n_runs // 13
    cycles = [r["cycle"] for r in runs]
    hashes = [r["config_hash"] for r in runs]
    declared = [r["config_hash"] for r in plan(capsys, monkeypatch, DESIGN, "--cycles", "1")]
    if order == "sequential":
        assert cycles == list(range(1, n_cycles + 1)) * 13
        assert hashes[::n_cycles] == declared
    else:
        assert cycles == [c for c in range(1, n_cycles + 1) for _ in range(13)]
        blocks = [hashes[i * 13 : (i + 1) * 13] for i in range(n_cycles)]
        assert all(sorted(b) == sorted(declared) for b in blocks)
        if order == "interleaved":
            assert all(b == declared for b in blocks)
        else:
            assert any(b != declared for b in blocks)


def test_cli_default_without_execution_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("model: m\nbackend: pytorch\nsweep: {batch_size: [1, 2]}\n")
    runs = plan(capsys, monkeypatch, str(f))
    assert len(runs) == 6 and [r["cycle"] for r in runs] == [1, 1, 2, 2, 3, 3]


def test_runner_flag_and_env_in_plan(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_RUNNER_VLLM", "apptainer:/scratch/v.sif")
    runs = plan(capsys, monkeypatch, DESIGN, "--runner", "local")
    by_backend = {r["backend"]: r["runner"] for r in runs}
    assert by_backend["pytorch"]["spec"] == "local"  # type: ignore[index]
    assert by_backend["vllm"]["spec"] == "apptainer:/scratch/v.sif"  # type: ignore[index]


def test_two_local_backends_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = invoke(capsys, monkeypatch, "run", DESIGN, "--dry-run", "--runner", "local")
    assert r.code == 2 and "LLEM_RUNNER_VLLM=docker" in " ".join(r.err.split())


def test_big_plan_needs_yes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "big.yaml"
    f.write_text(
        "model: m\nbackend: pytorch\nsweep:\n  batch_size: ["
        + ", ".join(str(i) for i in range(1, 202))
        + "]\n"
    )
    r = invoke(capsys, monkeypatch, "run", str(f), "--dry-run")
    assert r.code == 0 and "603 runs" in r.out and "needs --yes" in r.out
    r = invoke(capsys, monkeypatch, "run", str(f))
    assert r.code == 2 and "--yes" in r.err


@pytest.mark.parametrize(
    ("flag", "value"), [("--profile", "slow"), ("--order", "random"), ("--runner", "podman")]
)
def test_bad_flags_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, flag: str, value: str
) -> None:
    r = invoke(capsys, monkeypatch, "run", DESIGN, "--dry-run", flag, value)
    assert r.code == 2 and flag in r.err and "Traceback" not in r.err


def test_version(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    r = invoke(capsys, monkeypatch, "--version")
    assert r.code == 0 and r.out.strip() == "llem-docker 0.1.0"


def test_choice_options_list_their_values_in_help(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    r = invoke(capsys, monkeypatch, "run", "--help")
    text = " ".join(r.out.split())
    for values in ("sequential|interleaved|shuffled", "quick|standard|publication", "inline|slurm"):
        assert values in text
    r = invoke(capsys, monkeypatch, "--help")
    assert "--install-completion" in r.out and "--verbose" in r.out and "--quiet" in r.out


def test_quiet_and_verbose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    r = invoke(capsys, monkeypatch, "-q", "run", DESIGN, "--dry-run")
    assert r.code == 0 and r.out == ""  # nothing but errors and asked-for output
    r = invoke(capsys, monkeypatch, "-q", "run", DESIGN, "--dry-run", "--json")
    assert r.code == 0 and len(json.loads(r.out)) == 39  # --json output still comes
    r = invoke(capsys, monkeypatch, "-vv", "run", DESIGN, "--dry-run")
    assert r.code == 0 and "planned 39 runs" in r.err  # debug logging on stderr
    r = invoke(capsys, monkeypatch, "run", DESIGN, "--dry-run")
    assert "planned 39 runs" not in r.err  # the default is quiet about internals


def test_dry_run_shows_where_each_config_comes_from(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = plan(capsys, monkeypatch, DESIGN, "--cycles", "1")
    origins = [r["origin"] for r in runs]
    assert origins.count("grid") == 12 and origins.count("experiments[0]") == 1
    monkeypatch.setenv("COLUMNS", "200")
    r = invoke(capsys, monkeypatch, "run", DESIGN, "--dry-run")
    assert "experiments[0]" in r.out and "grid" in r.out


def test_slurm_dry_run_prints_the_sbatch_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLEM_CONFIG", str(tmp_path / "c.yaml"))
    (tmp_path / "c.yaml").write_text(f"output: {{results_dir: {tmp_path / 'res'}}}\n")
    monkeypatch.setenv("PATH", "/nonexistent")  # no sbatch needed to see the script
    r = invoke(
        capsys, monkeypatch, "run", DESIGN, "--dry-run", "--executor", "slurm",
        "--partition", "gpu", "--max-parallel", "4",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "#!/bin/bash" in r.out and "#SBATCH --array=0-38%4" in r.out
    assert "#SBATCH --partition=gpu" in r.out and "-m llem_docker.execution.slurm.task" in r.out
    assert not (tmp_path / "res").exists()  # nothing written, nothing submitted


def test_the_estimate_uses_the_engines_concurrency_and_never_passes_the_timeouts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """vLLM runs its prompts in waves of max_num_seqs (not batch_size 1), and the rough figure
    cannot pass the bound that the timeouts set."""
    monkeypatch.setenv("COLUMNS", "300")
    study = REPO / "examples" / "gpu-vllm-tp2.yaml"
    r = invoke(
        capsys, monkeypatch, "run", str(study), "--dry-run", "--runner", "local", "--no-gaps"
    )
    assert r.code == 0, r.err
    # 2 runs x (10 s start + 2 passes x 16 waves x 128 steps x 25 ms) = 3m 45s
    assert "runs ~3m 45s" in r.out and "10s start per local run" in r.out
    one = tmp_path / "one.yaml"  # one request at a time: 2 x 2 x 1024 x 128 steps x 25 ms
    one.write_text(study.read_text().replace("max_num_seqs: 64", "max_num_seqs: 1"))
    r = invoke(capsys, monkeypatch, "run", str(one), "--dry-run", "--runner", "local", "--no-gaps")
    assert r.code == 0, r.err
    line = " ".join(r.out.split())
    total = line.split("estimated wall time: ~")[1].split(" =")[0]
    bound = line.split("at most ")[1].split(" (")[0]
    assert total == bound, line  # each run capped at its timeout


def test_the_dry_run_says_what_the_profile_asks_of_validity(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    r = invoke(capsys, monkeypatch, "run", DESIGN, "--dry-run", "--profile", "publication")
    assert r.code == 0, r.err
    assert "validity: the publication profile's thresholds (windows ≥ 60 s, ≥ 5 cycles" in r.out
    assert "offline points have a pass estimated under 60 s" in r.out
    r = invoke(capsys, monkeypatch, "run", DESIGN, "--dry-run", "--cycles", "2")
    assert "2 cycle(s) < the standard profile's 3: every point will be invalid" in r.out
    assert "estimated under" not in r.out  # only a growing profile grows windows

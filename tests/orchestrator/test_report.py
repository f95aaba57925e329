"""The report's statistics and figures on a study folder whose results are written by hand
(energy included, which the CPU integration test cannot measure), through the real
collect/parquet path. tests/integration/test_report_real.py does the same on real runs."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest

from llem_docker.config.settings import RunnerSpec
from llem_docker.execution.prepare import prepare_run
from llem_docker.execution.runners.local import LocalRunner
from llem_docker.report.plots import draw
from llem_docker.report.points import build_report
from llem_docker.report.render import as_csv, html_page, markdown
from llem_docker.report.stats import summarize, t_975
from llem_docker.store.collect import assemble
from llem_docker.store.manifest import Manifest, RunError
from llem_docker.study.loader import load_study
from llem_docker.study.plan import plan_study
from llem_harness.contract import (
    CO2,
    Energy,
    ExperimentResult,
    Latency,
    MeasurementSettings,
    Memory,
    PhaseFigures,
    Phases,
    RunRequest,
    Stats,
    Tokens,
    Warmup,
    atomic_write_json,
)
from llem_harness.energy.base import Sample
from llem_harness.energy.timeseries import write_timeseries
from llem_harness.validity import evaluate


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_summary_by_hand() -> None:
    s = summarize([1.0, 2.0, 4.0, None])  # None: not measured, left out
    mean = 7 / 3
    sd = math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 2)
    assert s.n == 3 and s.mean == pytest.approx(mean) and s.std == pytest.approx(sd)
    assert s.ci95 == pytest.approx(4.3027 * sd / math.sqrt(3), rel=1e-4)  # t(0.975, 2)
    assert s.cv == pytest.approx(sd / mean)
    one = summarize([5.0])
    assert (one.n, one.mean, one.std, one.ci95) == (1, 5.0, None, None)
    assert summarize([None]).mean is None
    assert round(t_975(1), 3) == 12.706 and round(t_975(35), 3) == 2.030  # the t table's
    assert round(t_975(500), 3) == 1.965 and round(t_975(2), 3) == 4.303


# (batch_size, cycle) → (energy J, tokens/s, ttft ms); batch 4 is noisy on purpose.
FIGURES = {
    (1, 1): (100.0, 50.0, 20.0), (1, 2): (102.0, 49.0, 21.0), (1, 3): (101.0, 51.0, 19.0),
    (4, 1): (60.0, 150.0, 40.0), (4, 2): (90.0, 120.0, 45.0), (4, 3): (70.0, 160.0, 41.0),
}  # fmt: skip
OUTPUT_TOKENS = 200


def make_study(
    tmp_path: Path,
    *,
    name: str = "synth",
    folder: str | None = None,
    scale: float = 1.0,
    environment: dict[str, Any] | None = None,
    failed: frozenset[int] = frozenset(),
    judge: bool = False,
) -> Path:
    """A completed study folder `tmp_path/<folder or name_1>`; energies × `scale`; the runs
    whose index is in `failed` failed (no result.json)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    src = tmp_path / f"{name}.yaml"
    src.write_text(
        f"name: {name}\nmodel: llem/tiny-llama\nbackend: pytorch\nsweep: {{batch_size: [1, 4]}}\n"
        "execution: {n_cycles: 3, cycle_order: interleaved}\n"
    )
    plan = plan_study(load_study(src))
    study_dir = tmp_path / (folder or f"{name}_1")
    manifest = Manifest.new(
        plan, study_dir.name, str(src), {"pytorch": RunnerSpec("local", None, "t")}
    )
    ms = MeasurementSettings()
    for run in plan.runs:
        d = study_dir / "runs" / run.run_id
        prepare_run(study_dir, plan, run, {"pytorch": LocalRunner()}, ms, {})
        req = RunRequest.model_validate_json((d / "experiment.json").read_text())
        cfg, ident, runner = req.config, req.run, req.runner
        if run.index in failed:
            entry = manifest.entry(run.run_id)
            entry.state, entry.error = "failed", RunError(type="Boom", message="failed on purpose")
            continue
        joules, tps, ttft = FIGURES[(cfg.batch_size, run.cycle)]
        joules *= scale
        st = Stats(mean=ttft, p50=ttft, p90=ttft, p99=ttft, n=4)
        res = ExperimentResult(
            experiment_id=run.run_id, run=ident, config=cfg, config_hash=run.point.config_hash,
            backend="pytorch", backend_version="x", model=cfg.model, runner=runner,
            started_at="2026-01-01T00:00:00+00:00", ended_at="2026-01-01T00:00:04+00:00",
            tokens=Tokens(input=100, output=OUTPUT_TOKENS), duration_s=4.0,
            throughput_tokens_per_s=tps,
            energy=Energy(total_j=joules, method="nvml_counter", per_device_j={"0": joules}),
            energy_per_output_token_j=joules / OUTPUT_TOKENS,
            phases=Phases(
                prefill=PhaseFigures(duration_s=0.4, tokens=100, energy_j=joules / 10,
                                     energy_per_token_j=joules / 10 / 100),
                decode=PhaseFigures(duration_s=3.6, tokens=OUTPUT_TOKENS - 4,
                                    energy_j=joules * 0.9,
                                    energy_per_token_j=joules * 0.9 / (OUTPUT_TOKENS - 4)),
            ),
            latency=Latency(ttft_ms=st, itl_ms=st, mode="streamer_per_batch"),
            memory=Memory(peak_mb=1.0), co2=CO2(kg=joules * 1e-7),
            warmup=Warmup(runs=1, converged=True, final_cv=0.01, threshold=0.05, throughputs=[1.0]),
            measurement=ms, timeseries={"window_start_s": 1.0, "window_end_s": 5.0},
            environment=environment or {},
            warnings=["short measurement window: 4.00 s < 10 s"] if cfg.batch_size == 4 else [],
        )  # fmt: skip
        samples = [Sample(t / 10, 0, 80.0 + (200.0 if 1.0 <= t / 10 <= 5.0 else 0.0), None,
                          None, None, None, None) for t in range(60)]  # fmt: skip
        if judge:  # the harness's own rules, as a 1.9 result carries them
            res.validity = evaluate(res, samples)
        atomic_write_json(d / "result.json", res.model_dump(mode="json"))
        write_timeseries(samples, d / "timeseries.parquet")
        entry = manifest.entry(run.run_id)
        entry.state = "completed"
    manifest.state = "failed" if failed else "completed"
    manifest.write(study_dir)
    assemble(study_dir, manifest)
    return study_dir


def test_statistics_flags_and_figures(tmp_path: Path) -> None:
    study_dir = make_study(tmp_path)
    r = build_report(study_dir, cv_threshold=0.05)
    assert [p.swept for p in r.points] == [{"batch_size": 1}, {"batch_size": 4}]
    small, big = r.points
    jpt = [FIGURES[(4, c)][0] / OUTPUT_TOKENS for c in (1, 2, 3)]
    s = big.stats["energy_per_output_token_j"]
    mean = sum(jpt) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in jpt) / 2)
    assert s.n == 3 and s.mean == pytest.approx(mean) and s.std == pytest.approx(sd)
    assert s.ci95 == pytest.approx(4.3027 * sd / math.sqrt(3), rel=1e-4)  # t(0.975, 2)
    assert big.stats["co2_kg"].mean == pytest.approx(
        sum(FIGURES[(4, c)][0] for c in (1, 2, 3)) / 3 * 1e-7
    )
    assert any(f.startswith("CV of J/token") for f in big.flags)
    assert "warnings: short window ×3" in big.flags  # which warning, in how many runs
    assert big.warnings == {"short window": 3} and big.with_warnings == 3
    assert small.flags == []  # CV about 1%, no warnings

    figs = draw(r, study_dir / "report")
    assert set(figs.written) == {"energy_per_token.png", "throughput.png", "tradeoff.png",
                                 "phase_split.png", "power_timeline.png", "pareto.png"}  # fmt: skip
    assert not figs.skipped
    for path in figs.written.values():
        assert png_size(path) == (800, 500) and path.stat().st_size > 10_000
    page = html_page(r, figs)
    for name in figs.written:
        assert f"src='{name}'" in page
    md = markdown(r, figs)
    assert "| pytorch batch_size=4 | 3/3 |" in md and "![tradeoff.png](tradeoff.png)" in md


def test_report_cli_formats_and_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.orchestrator.cliutil import invoke

    study_dir = make_study(tmp_path)
    res = invoke(
        capsys,
        monkeypatch,
        "report",
        str(study_dir),
        "--format",
        "json",
        "--out",
        str(tmp_path / "o"),
    )
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert [p["stats"]["throughput_tokens_per_s"]["n"] for p in data["points"]] == [3, 3]
    assert set(data["figures"]) == {
        "energy_per_token.png",
        "throughput.png",
        "tradeoff.png",
        "phase_split.png",
        "power_timeline.png",
        "pareto.png",
    }
    res = invoke(capsys, monkeypatch, "report", str(study_dir), "--format", "html")
    assert res.code == 0 and (study_dir / "report" / "report.html").is_file()
    bad = invoke(capsys, monkeypatch, "report", str(study_dir), "--x", "nope")
    assert bad.code == 2 and "`nope` is not a swept key" in bad.err and "batch_size" in bad.err
    missing = invoke(capsys, monkeypatch, "report", str(tmp_path))
    assert (
        missing.code == 2
        and "results.parquet does not exist" in missing.err
        and "collect" in missing.err
    )


def test_a_point_is_valid_only_when_every_run_is(tmp_path: Path) -> None:
    unjudged = build_report(make_study(tmp_path / "a"))  # results before schema 1.9
    # no run verdicts: unknown, unless the cycles themselves spread too far
    assert {p.verdict for p in unjudged.points} == {"unknown", "invalid: cycle_cv"}
    judged = build_report(make_study(tmp_path / "b", judge=True, failed=frozenset({2})))
    (short,) = [p for p in judged.points if p.failed]
    (whole,) = [p for p in judged.points if not p.failed]
    assert short.valid is False and short.invalid_rules[0] == "every run completed"
    assert "window_length" in short.invalid_rules  # 4 s windows
    assert whole.verdict.startswith("invalid: window_length")
    csv_text = as_csv(judged)
    assert "valid,invalid_rules" in csv_text.splitlines()[0]
    assert ',False,"every run completed, window_length' in csv_text

"""`reproduce` takes the original's measurement settings and thermal gaps over this machine's
user config (`--no-gaps` drops the gaps, and says what the original's were)."""

from __future__ import annotations

from pathlib import Path

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.review.reproduce import Original, adopt_settings
from llem_docker.store.manifest import Manifest, ThermalGaps
from llem_docker.study.model import ExecutionConfig, StudyConfig
from llem_docker.study.plan import plan_study


def original(tmp_path: Path, *gaps: tuple[float, float]) -> Original:
    study = StudyConfig(
        name="g",
        base={"model": "llem/tiny-llama", "weights": "dummy"},
        backends=("pytorch",),
        experiments=({"batch_size": 1},),
    )
    plan = plan_study(study, ExecutionConfig(n_cycles=1))
    m = Manifest.new(plan, "g_1", None, {"pytorch": RunnerSpec("local", None, "test")})
    times = [m.created_at, *(f"resumed {i}" for i in range(1, len(gaps)))]
    m.thermal_gaps = [
        ThermalGaps(started_at=t, config_s=a, cycle_s=b)
        for t, (a, b) in zip(times[: len(gaps)], gaps, strict=True)
    ]
    return Original(tmp_path, m, {"baseline_seconds": 7.0}, tmp_path / "study.yaml", None)


def here(tmp_path: Path, config: str = "", *, no_gaps: bool = False) -> Settings:
    path = tmp_path / "llem.yaml"
    path.write_text(config)
    s = Settings.load(env={"LLEM_CONFIG": str(path)})
    s.no_gaps = no_gaps
    return s


def test_the_originals_gaps_and_measurement_win(tmp_path: Path) -> None:
    s = here(tmp_path, "execution: {config_gap_seconds: 0, cycle_gap_seconds: 0}\n")
    lines = adopt_settings(original(tmp_path, (60.0, 300.0)), s)
    assert (s.execution.config_gap_seconds, s.execution.cycle_gap_seconds) == (60.0, 300.0)
    assert s.measurement.baseline_seconds == 7.0
    assert s.source("execution.cycle_gap_seconds") == "the original study (manifest.json)"
    assert lines == ["thermal gaps: the original's, 60 s between configs and 300 s between cycles"]


def test_no_gaps_drops_them_and_says_what_they_were(tmp_path: Path) -> None:
    s = here(tmp_path, no_gaps=True)
    (line,) = adopt_settings(original(tmp_path, (60.0, 300.0)), s)
    assert (s.execution.config_gap_seconds, s.execution.cycle_gap_seconds) == (0.0, 0.0)
    assert s.source("execution.config_gap_seconds") == "--no-gaps"
    assert "none (--no-gaps, or the quick profile)" in line and "60 s and 300 s" in line


def test_a_later_start_with_other_gaps_is_pointed_out(tmp_path: Path) -> None:
    s = here(tmp_path)
    lines = adopt_settings(original(tmp_path, (0.0, 0.0), (60.0, 300.0)), s)
    assert (s.execution.config_gap_seconds, s.execution.cycle_gap_seconds) == (0.0, 0.0)
    assert len(lines) == 2 and "later starts" in lines[1]


def test_an_older_manifest_keeps_this_machines_gaps(tmp_path: Path) -> None:
    s = here(tmp_path, "execution: {config_gap_seconds: 5, cycle_gap_seconds: 9}\n")
    (line,) = adopt_settings(original(tmp_path), s)
    assert (s.execution.config_gap_seconds, s.execution.cycle_gap_seconds) == (5.0, 9.0)
    assert "this machine's" in line
    old = original(tmp_path, (1.0, 2.0))  # begun before 1.5, resumed after: only the resume's
    old.manifest.thermal_gaps[0].started_at = "2026-12-08T00:00:00.000+00:00"
    (line,) = adopt_settings(old, s)
    assert (s.execution.config_gap_seconds, s.execution.cycle_gap_seconds) == (5.0, 9.0)
    assert "did not record" in line

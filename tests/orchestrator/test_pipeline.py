"""prepare_study: the one way into a study for the CLI and the library API."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llem_docker.errors import ConfigError
from llem_docker.execution.pipeline import prepare_study
from llem_docker.study.loader import load_study
from tests.conftest import TINY_STUDY


def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**TINY_STUDY, "sweep": {"batch_size": [1, 2]}}))
    return path


def test_the_cli_and_the_library_differ_only_in_the_base_profile(tmp_path: Path) -> None:
    path = study_file(tmp_path)
    sizes: list[tuple[int, int]] = []
    cli = prepare_study(
        load_study(path), source=path, runner="local", on_size=lambda t, lim: sizes.append((t, lim))
    )
    lib = prepare_study(load_study(path), source=path, runner="local", base=None)
    assert len(cli.plan.runs) == 6 and cli.plan.execution.n_cycles == 3  # standard: 3 cycles
    assert len(lib.plan.runs) == 2 and lib.plan.execution.n_cycles == 1
    assert sizes == [(6, int(cli.settings.execution.max_runs))]
    assert cli.plan.design_hash == lib.plan.design_hash
    assert cli.runners["pytorch"].kind == lib.runners["pytorch"].kind == "local"
    assert cli.resume is None and cli.prior is None


def test_a_resumed_study_keeps_its_execution(tmp_path: Path) -> None:
    path = study_file(tmp_path)
    with pytest.raises(ConfigError, match="cannot change a study that is being resumed"):
        prepare_study(load_study(path), source=path, resume=tmp_path, cycles=2)
    with pytest.raises(ConfigError, match="--max-runs"):
        prepare_study(load_study(path), source=path, runner="local", max_runs=3)

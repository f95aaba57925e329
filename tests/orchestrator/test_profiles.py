"""Execution profiles and their precedence (study/profiles.py), shared by the CLI and the
library API."""

from __future__ import annotations

from pathlib import Path

import pytest

from llem_docker.config.yamlsrc import Document
from llem_docker.errors import ConfigError
from llem_docker.study.loader import study_from_document
from llem_docker.study.model import StudyConfig
from llem_docker.study.profiles import effective_execution, gaps_off

BASE = {"name": "p", "model": "llem/tiny-llama", "backend": "pytorch"}


def study(**execution: object) -> StudyConfig:
    data = {**BASE, **({"execution": execution} if execution else {})}
    return study_from_document(Document(Path("<test>"), data))


def test_precedence_base_study_profile_flags() -> None:
    plain = study()
    assert effective_execution(plain).n_cycles == 3  # the CLI's base: standard
    assert effective_execution(plain, base=None).n_cycles == 1  # the library's base
    own = study(n_cycles=2, cycle_order="sequential")
    assert (effective_execution(own).n_cycles, effective_execution(own).cycle_order) == (
        2,
        "sequential",
    )
    assert effective_execution(own, "publication").n_cycles == 5  # the profile over the study
    flags = effective_execution(own, "publication", cycles=7, order="interleaved")
    assert (flags.n_cycles, flags.cycle_order) == (7, "interleaved")  # flags over everything
    assert gaps_off("quick", False) and gaps_off(None, True) and not gaps_off("standard", False)


def test_an_unknown_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown execution profile `fast`"):
        effective_execution(study(), "fast")


def test_each_profile_sets_the_validity_thresholds() -> None:
    from llem_docker.study.profiles import policy_for

    assert policy_for("publication").min_window_s == 60 and policy_for("publication").grow_window
    assert policy_for("publication").min_cycles == 5 and policy_for("quick").min_cycles == 1
    assert policy_for(None).profile == "standard"  # the CLI's base
    library = policy_for(None, None)  # the library's base: one cycle, so no cycle minimum
    assert (library.profile, library.min_cycles, library.min_window_s) == ("library", 1, 10.0)

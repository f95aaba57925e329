"""The environment record of a study and of this host, and their differences
(review/envrecord.py), on study folders written by hand and a stand-in nvidia-smi."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.execution.images import ImageInfo
from llem_docker.review.envdiff import diff, render_lines
from llem_docker.review.envrecord import (
    NO_LOCAL_IMAGE,
    NO_SMI,
    NOT_RECORDED,
    SMI_QUERY,
    EnvRecord,
    Fact,
    current_environment,
    study_environment,
)
from llem_docker.store.layout import StudyDir
from tests.orchestrator.test_report import make_study

GPU = {
    "index": 0,
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-1",
    "memory_total_mb": 81559.0,
    "power_limit_w": 700.0,
    "persistence_mode": True,
    "driver_version": "550.54.15",
    "cuda_driver_version": "12.4",
}
ENVIRONMENT: dict[str, Any] = {
    "gpus": [GPU, {**GPU, "index": 1, "uuid": "GPU-2"}],
    "gpu_count": 2,
    "driver_version": "550.54.15",
    "cuda_driver_version": "12.4",
    "torch_version": "2.5.1",
    "cuda_runtime_version": "12.4",
    "cpu": "AMD EPYC 9654",
    "cpu_count": 192,
    "os": "Linux-6.8-x86_64-with-glibc2.35",
    "python": "3.11.7",
    "backend": "pytorch",
    "backend_version": "4.46.0",
    "harness_version": "0.1.0",
    "runner": "local",
    "image": None,
    "image_digest": None,
}
SMI_ROWS = (
    "NVIDIA H100 80GB HBM3, 550.54.15, 700.00 W, Enabled, 2\n"
    "NVIDIA H100 80GB HBM3, 550.54.15, 700.00 W, Enabled, 2\n"
)
LOCAL = {"pytorch": RunnerSpec("local", None, "test")}


def settings(tmp_path: Path, path: str) -> Settings:
    return Settings.load(env={"PATH": path, "XDG_CONFIG_HOME": str(tmp_path / "xdg")})


def result_files(study_dir: Path) -> list[Path]:
    return sorted(StudyDir(study_dir).runs.glob("*/result.json"))


def set_environment(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data["environment"] = {**data["environment"], **changes}
    path.write_text(json.dumps(data))


def test_study_record_from_the_first_completed_run(tmp_path: Path) -> None:
    study_dir = make_study(tmp_path, environment=ENVIRONMENT, failed=frozenset({1}))
    rec = study_environment(study_dir)
    assert rec.describes == "study" and rec.schema_version == "1.0"
    assert rec.gpu_model.value == "NVIDIA H100 80GB HBM3" and rec.gpu_count.value == 2
    assert rec.driver_version.value == "550.54.15" and rec.cuda_driver_version.value == "12.4"
    assert rec.cuda_runtime_version.value == "12.4" and rec.power_limit_w.value == 700.0
    assert rec.persistence_mode.value is True and rec.cpu_model.value == "AMD EPYC 9654"
    assert (rec.cpu_count.value, rec.python.value) == (192, "3.11.7")
    assert rec.harness_version.value == "0.1.0"
    for name in ("clocks_policy", "mig_mode", "ecc_state"):
        f = getattr(rec, name)
        assert f.value is None and f.unknown_reason == NOT_RECORDED
    b = rec.backends["pytorch"]
    assert (b.engine, b.engine_version.value, b.runner.value) == ("pytorch", "4.46.0", "local")
    assert b.container_runtime.value == "none"
    assert b.image.value is None and b.image.unknown_reason == NO_LOCAL_IMAGE
    assert b.image_digest.unknown_reason == NO_LOCAL_IMAGE
    assert rec.notes == []
    assert EnvRecord.model_validate_json(rec.model_dump_json()) == rec


def test_runs_that_disagree_are_noted(tmp_path: Path) -> None:
    study_dir = make_study(tmp_path, environment=ENVIRONMENT)
    last = result_files(study_dir)[-1]
    set_environment(last, gpus=[{**GPU, "name": "NVIDIA A100-SXM4-80GB"}], driver_version="535.1")
    rec = study_environment(study_dir)
    assert rec.gpu_model.value == "NVIDIA H100 80GB HBM3"  # the first run's
    assert len(rec.notes) == 2
    assert (
        "disagree on the GPU model" in rec.notes[0]
        and "NVIDIA A100-SXM4-80GB (1 run)" in (rec.notes[0])
    )
    assert "disagree on the driver version" in rec.notes[1] and "550.54.15 (5 runs)" in rec.notes[1]


def test_what_a_study_did_not_record_is_unknown_with_the_reason(tmp_path: Path) -> None:
    no_gpu = {"gpus": [], "gpu_count": 0, "gpu_unavailable_reason": "no NVIDIA GPU visible"}
    rec = study_environment(make_study(tmp_path / "a", environment=no_gpu))
    assert rec.gpu_count.value == 0
    assert rec.gpu_model.unknown_reason == "no NVIDIA GPU visible"
    assert rec.cpu_model.unknown_reason == "not in the first completed run's result.json"
    nothing = study_environment(make_study(tmp_path / "b", failed=frozenset(range(1, 7))))
    assert nothing.gpu_model.unknown_reason == "no completed run has a result.json"
    assert nothing.backends["pytorch"].engine_version.unknown_reason == (
        "no completed run of this backend"
    )
    empty = study_environment(tmp_path / "nowhere")
    assert empty.backends == {} and "manifest.json is missing or unreadable" in empty.notes


def docker_study(tmp_path: Path, digest: str) -> Path:
    """The hand-written study, as if its pytorch runs had used a Docker image."""
    study_dir = make_study(tmp_path, environment={**ENVIRONMENT, "runner": "docker"})
    sd = StudyDir(study_dir)
    manifest = json.loads(sd.manifest.read_text())
    manifest["runners"]["pytorch"] = {"kind": "docker", "target": "llem/pytorch:1", "source": "t"}
    sd.manifest.write_text(json.dumps(manifest))
    study = json.loads(sd.study_json.read_text())
    study["runners"]["pytorch"] = {**manifest["runners"]["pytorch"], "image_digest": digest}
    sd.study_json.write_text(json.dumps(study))
    return study_dir


def test_current_environment_without_nvidia_smi(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    rec = current_environment(settings(tmp_path, str(empty)), LOCAL)
    assert rec.describes == "host"
    for name in ("gpu_model", "gpu_count", "driver_version", "power_limit_w", "persistence_mode"):
        f: Fact = getattr(rec, name)
        assert f.value is None and f.unknown_reason == NO_SMI
    assert rec.cpu_count.value == os.cpu_count() and rec.os.value
    assert rec.python.value  # every runner is local: this Python runs them
    assert rec.clocks_policy.unknown_reason == NOT_RECORDED
    assert rec.backends["pytorch"].image_digest.unknown_reason == NO_LOCAL_IMAGE
    injected = current_environment(settings(tmp_path, str(empty)), LOCAL, smi=lambda: None)
    assert injected.gpu_model.unknown_reason == NO_SMI


def test_current_environment_reads_nvidia_smi(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    args = tmp_path / "args"
    smi.write_text(f'#!/bin/sh\necho "$@" > {args}\ncat <<EOF\n{SMI_ROWS}EOF\n')
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    rec = current_environment(settings(tmp_path, str(bindir)), LOCAL)
    assert (rec.gpu_model.value, rec.gpu_count.value) == ("NVIDIA H100 80GB HBM3", 2)
    assert rec.driver_version.value == "550.54.15" and rec.power_limit_w.value == 700.0
    assert rec.persistence_mode.value is True
    assert args.read_text().split() == list(SMI_QUERY)
    mixed = "A, 1.0, 300.00 W, Disabled, 2\nB, 1.0, [N/A], Disabled, 2\n"
    other = current_environment(settings(tmp_path, str(bindir)), LOCAL, smi=lambda: mixed)
    assert other.gpu_model.value == "A, B" and other.persistence_mode.value is False
    assert other.power_limit_w.value == 300.0  # the one the driver shows


def test_current_docker_digest_is_injected(tmp_path: Path) -> None:
    runners = {"pytorch": RunnerSpec("docker", "llem/pytorch:1", "test")}
    asked: list[str] = []

    def inspect(ref: str) -> ImageInfo:
        asked.append(ref)
        return ImageInfo(ref, present=True, image_id="sha256:id", digest="llem/pytorch@sha256:a")

    s = settings(tmp_path, str(tmp_path))
    rec = current_environment(s, runners, smi=lambda: SMI_ROWS, inspect=inspect)
    b = rec.backends["pytorch"]
    assert asked == ["llem/pytorch:1"] and b.image_digest.value == "llem/pytorch@sha256:a"
    assert (b.runner.value, b.container_runtime.value, b.image.value) == (
        "docker",
        "docker",
        "llem/pytorch:1",
    )
    assert rec.python.value is None and "image" in (rec.python.unknown_reason or "")

    def gone(ref: str) -> ImageInfo:
        raise RuntimeError("cannot reach the Docker engine\nmore")

    down = current_environment(s, runners, smi=lambda: SMI_ROWS, inspect=gone)
    assert down.backends["pytorch"].image_digest.unknown_reason == (
        "the Docker engine could not be asked: cannot reach the Docker engine"
    )
    absent = current_environment(
        s, runners, smi=lambda: SMI_ROWS, inspect=lambda r: ImageInfo(r, present=False)
    )
    assert absent.backends["pytorch"].image_digest.unknown_reason == (
        "the image llem/pytorch:1 is not here"
    )


def by_field(diffs: list[Any]) -> dict[str, Any]:
    return {d.field: d for d in diffs}


def test_diff_statuses_and_severities(tmp_path: Path) -> None:
    original = study_environment(docker_study(tmp_path, "llem/pytorch@sha256:a"))
    runners = {"pytorch": RunnerSpec("docker", "llem/pytorch:1", "test")}
    s = settings(tmp_path, str(tmp_path))
    smi = "NVIDIA A100-SXM4-80GB, 535.1, 700.00 W, Enabled, 2\n" * 2

    def inspect(digest: str) -> Any:
        return lambda ref: ImageInfo(ref, present=True, digest=digest)

    same_image = current_environment(
        s, runners, smi=lambda: smi, inspect=inspect("llem/pytorch@sha256:a")
    )
    d = by_field(diff(original, same_image))
    assert (d["gpu_count"].status, d["gpu_count"].severity) == ("same", "info")
    assert (d["power_limit_w"].status, d["persistence_mode"].status) == ("same", "same")
    assert (d["gpu_model"].status, d["gpu_model"].severity) == ("different", "warn")
    assert (d["driver_version"].status, d["driver_version"].severity) == ("different", "warn")
    assert (d["gpu_model"].original, d["gpu_model"].current) == (
        "NVIDIA H100 80GB HBM3",
        "NVIDIA A100-SXM4-80GB",
    )
    assert d["cuda_driver_version"].status == "unknown"
    assert "here: not among nvidia-smi's --query-gpu fields" in d["cuda_driver_version"].reason
    assert d["clocks_policy"].status == "unknown" and NOT_RECORDED in d["clocks_policy"].reason
    assert d["backends.pytorch.image_digest"].status == "same"
    assert d["backends.pytorch.runner"].status == "same"
    assert d["backends.pytorch.engine_version"].status == "unknown"
    if d["os"].status == "different":
        assert d["os"].severity == "info"

    other = current_environment(
        s, runners, smi=lambda: smi, inspect=inspect("llem/pytorch@sha256:b")
    )
    digest = by_field(diff(original, other))["backends.pytorch.image_digest"]
    assert (digest.status, digest.severity) == ("different", "refuse")
    allowed = by_field(diff(original, other, allow_image_change=True))
    assert allowed["backends.pytorch.image_digest"].severity == "warn"
    unknown = current_environment(
        s, runners, smi=lambda: None, inspect=lambda r: ImageInfo(r, False)
    )
    u = by_field(diff(original, unknown))
    assert (u["gpu_model"].status, u["gpu_model"].severity) == ("unknown", "info")
    assert u["gpu_model"].reason == f"here: {NO_SMI}"
    assert u["backends.pytorch.image_digest"].status == "unknown"
    assert u["backends.pytorch.image_digest"].severity == "warn"  # cannot tell it is the same


def test_local_runners_match_and_lines_render(tmp_path: Path) -> None:
    original = study_environment(make_study(tmp_path, environment=ENVIRONMENT))
    here = current_environment(settings(tmp_path, str(tmp_path)), LOCAL, smi=lambda: SMI_ROWS)
    d = by_field(diff(original, here))
    assert d["backends.pytorch.image_digest"].status == "same"  # neither has an image
    assert d["gpu_model"].status == "same" and d["driver_version"].status == "same"
    extra = current_environment(
        settings(tmp_path, str(tmp_path)),
        {**LOCAL, "vllm": RunnerSpec("docker", "llem/vllm:1", "t")},
        smi=lambda: SMI_ROWS,
        inspect=lambda r: ImageInfo(r, True, digest="d"),
    )
    e = by_field(diff(original, extra))
    assert e["backends.vllm.image_digest"].status == "unknown"
    assert "study: this backend is not in the record" in e["backends.vllm.image_digest"].reason
    lines = render_lines(diff(original, here))
    assert "info   same      gpu_model: 'NVIDIA H100 80GB HBM3'" in lines
    assert "info   same      backends.pytorch.image: n/a" in lines
    assert any(
        line.startswith("info   unknown   clocks_policy: study: not recorded") for line in lines
    )
    changed = original.model_copy(update={"driver_version": Fact(value="535.1")})
    assert "warn   different driver_version: '535.1' (study) → '550.54.15' (here)" in render_lines(
        diff(changed, here)
    )
    with pytest.raises(ValueError):
        EnvRecord.model_validate({**original.model_dump(), "surprise": 1})

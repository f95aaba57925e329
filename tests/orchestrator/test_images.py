"""The host/image handshake and `doctor`, against fakes. tests/docker/test_images.py does
the same against a real engine and real images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llem_docker.cli.doctor import _apptainer, run_checks
from llem_docker.config.settings import Settings
from llem_docker.execution.images import (
    LABEL_FINGERPRINT,
    LABEL_HARNESS,
    ImageInfo,
    ImageMismatch,
    check_image,
    handshake_problem,
)
from llem_harness.contract import schema_fingerprint

GOOD = {LABEL_FINGERPRINT: schema_fingerprint(), LABEL_HARNESS: "0.1.0"}


def test_a_matching_image_passes() -> None:
    assert handshake_problem(ImageInfo("img:1", True, labels=GOOD), "pytorch") is None


def test_a_missing_image_names_make_images() -> None:
    msg = handshake_problem(ImageInfo("img:1", False), "pytorch")
    assert msg and "`img:1` is not on this machine" in msg and "make images" in msg


def test_an_unlabelled_image_is_refused() -> None:
    msg = handshake_problem(ImageInfo("img:1", True, labels={}), "vllm")
    assert msg and "`make images` (images/vllm/)" in msg and "LLEM_SKIP_IMAGE_CHECK=1" in msg


def test_a_schema_mismatch_names_both_fingerprints() -> None:
    labels = {LABEL_FINGERPRINT: "deadbeef", LABEL_HARNESS: "0.0.9"}
    msg = handshake_problem(ImageInfo("img:1", True, labels=labels), "pytorch")
    assert msg and "deadbeef" in msg and schema_fingerprint() in msg and "0.0.9" in msg


class _Images:
    def __init__(self, labels: dict[str, str] | None) -> None:
        self.labels = labels

    def get(self, ref: str) -> Any:
        from docker.errors import ImageNotFound

        if self.labels is None:
            raise ImageNotFound("no such image")
        return type("Img", (), {"id": "sha256:abc", "attrs": {"Config": {"Labels": self.labels}}})


class _Client:
    def __init__(self, labels: dict[str, str] | None) -> None:
        self.images = _Images(labels)


def test_check_image_raises_or_warns_when_skipped() -> None:
    assert check_image(_Client(GOOD), "img:1", "pytorch", {}) is None
    with pytest.raises(ImageMismatch, match="not on this machine"):
        check_image(_Client(None), "img:1", "pytorch", {})
    warning = check_image(_Client(None), "img:1", "pytorch", {"LLEM_SKIP_IMAGE_CHECK": "1"})
    assert warning and warning.startswith("LLEM_SKIP_IMAGE_CHECK is set")


def test_doctor_without_an_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    settings = Settings.load({"XDG_CONFIG_HOME": str(tmp_path)})
    rows = {c.name: c for c in run_checks(settings)}
    assert rows["docker engine"].status == "fail" and "start Docker" in rows["docker engine"].fix
    assert rows["pytorch runner"].status == "skip"
    assert rows["GPU in containers"].status == "skip"
    assert rows["user config"].status == "ok" and "not present" in rows["user config"].detail


def test_doctor_apptainer_row() -> None:
    missing = _apptainer(lambda tool: None)
    assert missing.status == "warn" and "make sif" in missing.fix
    found = _apptainer(lambda tool: "/bin/echo" if tool == "singularity" else None)
    assert found.status == "ok" and found.detail.startswith("/bin/echo: ")


def test_compose_services_use_the_orchestrators_default_tags() -> None:
    import yaml

    from llem_docker.config.settings import default_image
    from llem_harness.config import BACKENDS
    from tests.conftest import REPO

    doc = yaml.safe_load((REPO / "compose.yaml").read_text())
    assert set(doc["services"]) == set(BACKENDS)
    for backend, svc in doc["services"].items():
        assert svc["image"] == default_image(backend)
        assert "build" not in svc  # `make images` builds them: one recipe per image
        (gpu,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert gpu == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
        assert "HF_TOKEN" in svc["environment"]  # by name only: the value stays in the shell

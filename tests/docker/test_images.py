"""Images against a real engine: every backend's Dockerfile builds on a CPU stand-in base,
`make images PULL=1` pulls through a real local registry, the host/image handshake refuses a
mismatching image, and `doctor` reports what it finds."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llem_docker.execution.images import LABEL_FINGERPRINT, LABEL_HARNESS, LABEL_VERSION
from llem_harness import __version__
from llem_harness.contract import schema_fingerprint
from tests.conftest import REPO
from tests.docker.conftest import (
    IMAGE,
    cli_env,
    manifest,
    run_cli,
    study_dir,
    tiny_study,
    user_config,
    write_study,
)

pytestmark = pytest.mark.docker
DEFAULT_PYTORCH = f"llenergymeasure/pytorch:{__version__}"


def test_every_backend_dockerfile_builds_with_its_labels(engine: Any, test_image: str) -> None:
    """vllm and tensorrt on a base without their engine: the harness layer and labels only
    (pytorch, with a real CPU torch, runs real studies in the other tests)."""
    subprocess.run(
        ["make", "-s", "test-images", "BACKENDS=vllm tensorrt"], cwd=REPO, check=True, timeout=1800
    )
    for backend in ("pytorch", "vllm", "tensorrt"):
        ref = f"llem-test/{backend}:cpu"
        labels = engine.images.get(ref).attrs["Config"]["Labels"]
        assert labels[LABEL_FINGERPRINT] == schema_fingerprint()
        assert labels[LABEL_HARNESS] == labels[LABEL_VERSION] == __version__
        assert labels["llem.backend"] == backend
        out = engine.containers.run(
            ref, ["llem-harness", "--version"], user="4321:4321", remove=True
        )
        assert out.decode().strip() == f"llem-harness {__version__}"


# The goal for the harness layer over its engine (docs/images.md has the measured sizes).
HARNESS_LAYER_BOUND_MB = 100
BASE_LABEL = "org.opencontainers.image.base.name"
LAYER_RECORDS = "/usr/local/share/llem-docker/layers"

# Bytes on disk per installed distribution: the files its RECORD names, and the bytecode
# next to them.
DIST_SIZES = """
import importlib.metadata as md, importlib.util, json, os, re
sizes = {}
for dist in md.distributions():
    files = set()
    for entry in dist.files or []:
        path = os.path.realpath(dist.locate_file(entry))
        if os.path.isfile(path):
            files.add(path)
            pyc = importlib.util.cache_from_source(path) if path.endswith(".py") else ""
            if os.path.isfile(pyc):
                files.add(pyc)
    name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
    sizes[name] = sum(os.path.getsize(f) for f in files)
print(json.dumps(sizes))
"""


def _run_json(engine: Any, ref: str, command: list[str]) -> Any:
    return json.loads(engine.containers.run(ref, command, network_disabled=True, remove=True))


def _dist_sizes(engine: Any, ref: str) -> dict[str, int]:
    sizes: dict[str, int] = _run_json(engine, ref, ["python3", "-B", "-c", DIST_SIZES])
    return sizes


@pytest.mark.parametrize("backend", ["pytorch", "vllm", "tensorrt"])
def test_the_harness_layer_is_the_installed_harness_and_nothing_else(
    engine: Any, backend: str
) -> None:
    subprocess.run(
        ["make", "-s", "test-images", f"BACKENDS={backend}"], cwd=REPO, check=True, timeout=2400
    )
    layers = check_layers(engine, f"llem-test/{backend}:cpu")
    # pytorch/pytorch has no transformers: the pytorch image pins it in an engine layer.
    assert list(layers) == (["engine", "harness"] if backend == "pytorch" else ["harness"])


def check_layers(engine: Any, ref: str) -> dict[str, int]:
    """The image's layers above its engine base, as the engine counts them, are exactly the
    packages each install recorded (LAYER_RECORDS/<layer>.json), byte for byte (to 1 MB): no
    wheel folder, build context or cache in any layer, not even in one whose files a later
    layer deletes. The harness layer, the newest, stays under the goal. Returns {layer: bytes},
    oldest first."""
    image = engine.images.get(ref)
    base = engine.images.get(image.labels[BASE_LABEL])
    base_layers = base.attrs["RootFS"]["Layers"]
    assert image.attrs["RootFS"]["Layers"][: len(base_layers)] == base_layers
    above = image.history()[: len(image.history()) - len(base.history())]
    layer_sizes = [entry["Size"] for entry in reversed(above) if entry["Size"] > 0]

    engine_sizes, sizes = _dist_sizes(engine, base.id), _dist_sizes(engine, image.id)
    assert {n: b for n, b in sizes.items() if n in engine_sizes} == engine_sizes  # untouched
    records = _run_json(
        engine,
        image.id,
        [
            "python3",
            "-c",
            f"import json, pathlib; print(json.dumps([json.loads(p.read_text()) "
            f"for p in sorted(pathlib.Path('{LAYER_RECORDS}').glob('*.json'))]))",
        ],
    )
    order = {"engine": 0, "harness": 1}
    records.sort(key=lambda r: order[r["layer"]])
    assert len(records) == len(layer_sizes), (records, layer_sizes)
    recorded = [n for r in records for n in r["packages"]]
    assert sorted(recorded) == sorted(n for n in sizes if n not in engine_sizes)
    assert "llem-harness" in records[-1]["packages"]
    out = {}
    for record, size in zip(records, layer_sizes, strict=True):
        packages = sum(sizes[n] for n in record["packages"])
        assert abs(size - packages) < 1_000_000, (
            f"the {record['layer']} layer of {ref} holds {size / 1e6:.1f} MB, its packages "
            f"{packages / 1e6:.1f} MB: something else stayed in a layer"
        )
        out[record["layer"]] = size
    assert out["harness"] < HARNESS_LAYER_BOUND_MB * 1_000_000, f"{out['harness'] / 1e6:.1f} MB"

    leftovers = engine.containers.run(
        image.id,
        ["sh", "-c", "ls -d /tmp/llem* 2>/dev/null; find / -xdev -name '*llem_harness*.whl'"],
        network_disabled=True,
        remove=True,
    )
    assert leftovers.decode().split() == []
    return out


def test_a_mismatching_image_is_refused_before_anything_runs(
    tmp_path: Path, engine: Any, test_image: str
) -> None:
    bad = "llem-test/pytorch:mismatch"
    (tmp_path / "Dockerfile").write_text(
        f"FROM {IMAGE}\nLABEL {LABEL_FINGERPRINT}=deadbeef00000000\n"
    )
    engine.images.build(path=str(tmp_path), tag=bad, rm=True)
    try:
        study = write_study(tmp_path / "s.yaml", tiny_study("s"))
        config = user_config(tmp_path, runners={"pytorch": f"docker:{bad}"})
        proc = run_cli(["run", str(study)], cli_env(config))
        assert proc.returncode == 1
        text = " ".join(proc.stderr.split())
        assert "deadbeef00000000" in text and schema_fingerprint() in text
        assert "make images" in text and not (tmp_path / "results").exists()
        # The escape hatch: a warning, then the study runs.
        proc = run_cli(["run", str(study)], cli_env(config, LLEM_SKIP_IMAGE_CHECK="1"))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "LLEM_SKIP_IMAGE_CHECK is set" in " ".join(proc.stderr.split())
    finally:
        engine.images.remove(bad, force=True)


def test_a_missing_image_is_refused_with_the_make_images_hint(tmp_path: Path) -> None:
    study = write_study(tmp_path / "s.yaml", tiny_study("s"))
    config = user_config(tmp_path, runners={"pytorch": "docker:llem-test/absent:none"})
    proc = run_cli(["run", str(study)], cli_env(config))
    assert proc.returncode == 1
    text = " ".join(proc.stderr.split())
    assert "`llem-test/absent:none` is not on this machine" in text and "make images" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture()
def registry(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry, on a free loopback port, storing under tmp_path."""
    exe = shutil.which("docker-registry")
    if exe is None:
        pytest.fail("docker-registry is not installed (apt-get install docker-registry)")
    port = _free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        json.dumps(
            {
                "version": 0.1,
                "storage": {"filesystem": {"rootdirectory": str(tmp_path / "store")}},
                "http": {"addr": f"127.0.0.1:{port}"},
            }
        )
    )
    proc = subprocess.Popen(
        [exe, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_make_images_pull_from_a_registry(
    tmp_path: Path, engine: Any, test_image: str, registry: str
) -> None:
    remote = f"{registry}/{DEFAULT_PYTORCH}"
    saved = "llem-test/saved-default:pytorch"  # a developer's own default image survives
    had_default = any(DEFAULT_PYTORCH in img.tags for img in engine.images.list())
    if had_default:
        engine.images.get(DEFAULT_PYTORCH).tag(saved)
    engine.images.get(IMAGE).tag(remote)
    try:
        subprocess.run(["docker", "push", remote], check=True, capture_output=True, timeout=600)
        for ref in (remote, DEFAULT_PYTORCH):  # nothing of it left locally
            if any(ref in img.tags for img in engine.images.list()):
                engine.images.remove(ref, force=False)
        done = subprocess.run(
            ["make", "-s", "images", "PULL=1", f"REGISTRY={registry}", "BACKENDS=pytorch"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        pulled = engine.images.get(DEFAULT_PYTORCH)
        assert any(
            d.startswith(f"{registry}/llenergymeasure/pytorch@sha256:")
            for d in pulled.attrs["RepoDigests"]
        )
        # The default runner (no override) now finds its pinned image and runs a study in it.
        study = write_study(tmp_path / "s.yaml", tiny_study("pulled"))
        config = user_config(tmp_path)
        doc = yaml.safe_load(config.read_text())
        doc.pop("runners")  # the default: docker with llenergymeasure/pytorch:<version>
        config.write_text(yaml.safe_dump(doc))
        proc = run_cli(["run", str(study), "--json"], cli_env(config))
        assert proc.returncode == 0, proc.stderr[-2000:]
        runner = json.loads(proc.stdout)["runners"]["pytorch"]
        assert runner["target"] == DEFAULT_PYTORCH
        assert runner["image_digest"].startswith(f"{registry}/llenergymeasure/pytorch@sha256:")
        assert manifest(study_dir(tmp_path / "results"))["state"] == "completed"
    finally:
        for ref in (remote, DEFAULT_PYTORCH):
            with contextlib.suppress(Exception):  # not there
                engine.images.remove(ref, force=False)
        if had_default:
            engine.images.get(saved).tag(DEFAULT_PYTORCH)
            engine.images.remove(saved, force=False)


def test_doctor_against_the_engine(tmp_path: Path, test_image: str) -> None:
    config = user_config(tmp_path)
    args = ["doctor", "--backends", "pytorch", "--json"]
    proc = run_cli(args, cli_env(config))
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["docker engine"]["status"] == "ok"
    assert rows["pytorch runner"]["status"] == "ok"
    assert schema_fingerprint() in rows["pytorch runner"]["detail"]
    assert rows["GPU in containers"]["status"] == "skip"  # docker.gpus: none
    assert proc.returncode == 0
    # With GPUs requested on this CPU-only host, the probe fails and says how to fix it.
    config = user_config(tmp_path, docker={"gpus": "all"})
    proc = run_cli(args, cli_env(config))
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert proc.returncode == 1
    assert rows["GPU in containers"]["status"] == "fail"
    assert "docker.gpus: none" in rows["GPU in containers"]["fix"]


def test_compose_file_is_valid_for_docker_compose(tmp_path: Path) -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose)")
    shutil.copy(REPO / "compose.yaml", tmp_path / "compose.yaml")
    done = subprocess.run(
        [exe, "-f", "compose.yaml", "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert {s["image"] for s in services.values()} == {
        f"llenergymeasure/{b}:{__version__}" for b in ("pytorch", "vllm", "tensorrt")
    }


def _make_sif(path: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "sif", "BACKENDS=pytorch"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PATH": path, **env},
    )


def test_make_sif_without_apptainer_says_what_to_install() -> None:
    path = ":".join(p for p in os.environ["PATH"].split(":") if not _has_sif_tool(p))
    done = _make_sif(path, {})
    assert done.returncode != 0
    assert "neither apptainer nor singularity is installed" in done.stderr


def _has_sif_tool(folder: str) -> bool:
    return any((Path(folder) / t).exists() for t in ("apptainer", "singularity"))

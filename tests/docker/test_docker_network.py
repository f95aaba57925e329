"""`docker.network` on a real engine: a run that cannot need the hub (with `hf_hub_offline`,
or dummy weights of a shipped config) gets only its loopback, and completes; `bridge` gives
the engine's default; a network that does not exist is refused before any run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.docker.conftest import (
    LABEL,
    cli_env,
    manifest,
    run_cli,
    study_dir,
    tiny_study,
    user_config,
    write_study,
)

pytestmark = pytest.mark.docker


def _watch(engine: Any, seen: dict[str, str], stop: threading.Event) -> None:
    """Each llem container's network mode and interfaces, as the engine reports them."""
    while not stop.is_set():
        for c in engine.containers.list(filters={"label": LABEL}):
            if c.name not in seen:
                host = c.attrs.get("HostConfig", {})
                nets = c.attrs.get("NetworkSettings", {}).get("Networks") or {}
                seen[c.name] = f"{host.get('NetworkMode')}:{','.join(sorted(nets))}"
        stop.wait(0.1)


@pytest.mark.parametrize(
    ("docker", "mode", "nets"),
    [
        ({"hf_hub_offline": True}, "none", "none"),
        ({}, "none", "none"),  # auto: llem/tiny-llama's dummy weights need nothing
        ({"network": "bridge"}, "bridge", "bridge"),
    ],
)
def test_the_network_a_run_gets(
    tmp_path: Path, engine: Any, test_image: str, docker: dict[str, Any], mode: str, nets: str
) -> None:
    path = write_study(tmp_path / "net.yaml", tiny_study("net", n_prompts=2))
    config = user_config(tmp_path, docker=docker)
    seen: dict[str, str] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(engine, seen, stop), daemon=True)
    watcher.start()
    try:
        proc = run_cli(["run", str(path), "--yes"], cli_env(config))
    finally:
        stop.set()
        watcher.join(5)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert [r["state"] for r in manifest(study_dir(tmp_path / "results"))["runs"]] == ["completed"]
    (only,) = seen.values()
    assert only == f"{mode}:{nets}", seen


def test_a_network_that_does_not_exist_is_refused_before_any_run(
    tmp_path: Path, engine: Any, test_image: str
) -> None:
    path = write_study(tmp_path / "net.yaml", tiny_study("net", n_prompts=2))
    config = user_config(tmp_path, docker={"network": "llem-no-such-network"})
    proc = run_cli(["run", str(path), "--yes"], cli_env(config))
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = " ".join((proc.stdout + proc.stderr).split())
    assert "docker.network" in text and "llem-no-such-network` does not exist" in text
    assert "docker network create llem-no-such-network" in text
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())

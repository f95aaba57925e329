"""DockerRunner logic against a fake engine. tests/docker runs the same code on a real one."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, ImageNotFound, NotFound

from llem_docker.config.settings import Settings
from llem_docker.errors import ConfigError
from llem_docker.execution.runners.container import parse_gpus
from llem_docker.execution.runners.docker import DockerRunner
from llem_docker.execution.runners.docker_engine import (
    ContainerOptions,
    container_name,
    container_spec,
    reap_orphans,
)


def opts(**over: Any) -> ContainerOptions:
    base: dict[str, Any] = {
        "image": "llenergymeasure/pytorch:0.1.0",
        "gpus": None,
        "shm_size": "16g",
        "memory": None,
        "hf_cache_dir": Path("/cache/hf"),
        "hf_hub_offline": False,
        "engine_cache_dir": Path("/cache/engines"),
        "user": "1000:1000",
    }
    return ContainerOptions(**(base | over))


def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "study_20261122T000000Z" / "runs" / "001_c1_pytorch_abcdef12"
    d.mkdir(parents=True)
    return d


# -- the container a run gets ------------------------------------------------------------------
def test_spec_for_all_gpus(tmp_path: Path) -> None:
    d = run_dir(tmp_path)
    spec = container_spec(opts(), d, env={}, owner_pid=42, host="box")
    assert spec["image"] == "llenergymeasure/pytorch:0.1.0"
    assert spec["command"] == ["llem-harness", "run", "/llem/run"]
    assert spec["name"] == "llem-study_20261122T000000Z-001_c1_pytorch_abcdef12"
    assert spec["labels"] == {
        "llem.study": "study_20261122T000000Z",
        "llem.run": "001_c1_pytorch_abcdef12",
        "llem.owner_pid": "42",
        "llem.host": "box",
    }
    assert spec["user"] == "1000:1000" and spec["init"] is True and spec["detach"] is True
    assert spec["volumes"] == {
        str(d.resolve()): {"bind": "/llem/run", "mode": "rw"},
        "/cache/hf": {"bind": "/llem/hf-cache", "mode": "rw"},
        "/cache/engines": {"bind": "/llem/engine-cache", "mode": "rw"},
    }
    (req,) = spec["device_requests"]
    assert req["Count"] == -1 and req["Capabilities"] == [["gpu"]]
    assert spec["environment"] == {
        "HOME": "/tmp",
        "HF_HOME": "/llem/hf-cache",
        "LLEM_ENGINE_CACHE": "/llem/engine-cache",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    assert spec["shm_size"] == "16g" and "ipc_mode" not in spec and "mem_limit" not in spec


def test_spec_for_chosen_gpus_renumbers_cuda_visible_devices(tmp_path: Path) -> None:
    spec = container_spec(opts(gpus=["2", "5"]), run_dir(tmp_path), env={}, owner_pid=1)
    (req,) = spec["device_requests"]
    assert req["DeviceIDs"] == ["2", "5"]
    assert spec["environment"]["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_spec_for_no_gpus_ipc_host_and_memory(tmp_path: Path) -> None:
    spec = container_spec(
        opts(gpus=[], shm_size=None, memory="8g", hf_hub_offline=True),
        run_dir(tmp_path),
        env={},
        owner_pid=1,
    )
    assert spec["device_requests"] == []
    assert "CUDA_VISIBLE_DEVICES" not in spec["environment"]
    assert spec["ipc_mode"] == "host" and "shm_size" not in spec
    assert spec["mem_limit"] == spec["memswap_limit"] == "8g"
    assert spec["environment"]["HF_HUB_OFFLINE"] == "1"


def test_hf_token_comes_from_the_environment_only(tmp_path: Path) -> None:
    with_token = container_spec(opts(), run_dir(tmp_path), env={"HF_TOKEN": "hf_x"}, owner_pid=1)
    assert with_token["environment"]["HF_TOKEN"] == "hf_x"
    without = container_spec(opts(), tmp_path / "a" / "runs" / "b", env={}, owner_pid=1)
    assert "HF_TOKEN" not in without["environment"]


def test_container_names_are_valid() -> None:
    assert container_name("my study:1", "001/x") == "llem-my-study-1-001-x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("all", None), ("none", []), ("0,1", ["0", "1"]), ([3], ["3"]), (" ALL ", None)],
)
def test_parse_gpus(value: Any, expected: Any) -> None:
    assert parse_gpus(value, source="test") == expected


def test_parse_gpus_rejects_nonsense() -> None:
    with pytest.raises(ConfigError) as info:
        parse_gpus("two please", source="--gpus")
    assert info.value.key == "docker.gpus" and "comma-separated" in (info.value.fix or "")


def test_gpus_flag_overrides_the_user_config(tmp_path: Path) -> None:
    s = Settings.load({"XDG_CONFIG_HOME": str(tmp_path)}, gpus="none")
    assert s.docker.gpus == "none" and s.source("docker.gpus") == "--gpus"
    with pytest.raises(ConfigError):
        Settings.load({"XDG_CONFIG_HOME": str(tmp_path)}, gpus="abc")


# -- a fake engine -----------------------------------------------------------------------------
class FakeContainer:
    def __init__(self, name: str, labels: dict[str, str] | None = None, **behaviour: Any):
        self.name = name
        self.labels = labels or {}
        self.lines: list[bytes] = behaviour.get("lines", [])
        self.exit_code: int = behaviour.get("exit_code", 0)
        self.oom: bool = behaviour.get("oom", False)
        self.start_error: Exception | None = behaviour.get("start_error")
        self.hang: bool = behaviour.get("hang", False)
        self.wait_error: Exception | None = behaviour.get("wait_error")
        self.stop_exit: int = behaviour.get("stop_exit", 143)
        self.stopped = threading.Event()
        self.calls: list[str] = []
        self.attrs: dict[str, Any] = {}

    def start(self) -> None:
        self.calls.append("start")
        if self.start_error:
            raise self.start_error

    def logs(self, stream: bool, follow: bool) -> Iterator[bytes]:
        for line in self.lines:  # split across frames, as Docker may do
            yield line[:3]
            yield line[3:]
        if self.hang:
            self.stopped.wait(10)

    def stop(self, timeout: int) -> None:
        self.calls.append(f"stop({timeout})")
        self.exit_code = self.stop_exit
        self.stopped.set()

    def kill(self) -> None:
        self.calls.append("kill")
        self.stopped.set()

    def wait(self, timeout: int) -> dict[str, int]:
        if self.wait_error:
            raise self.wait_error
        return {"StatusCode": self.exit_code}

    def reload(self) -> None:
        self.attrs = {"State": {"ExitCode": self.exit_code, "OOMKilled": self.oom}}

    def remove(self, force: bool) -> None:
        self.calls.append("remove")


class FakeContainers:
    def __init__(self, make: Any = None, existing: list[FakeContainer] | None = None) -> None:
        self.make = make
        self.existing = existing or []
        self.created: list[dict[str, Any]] = []

    def create(self, **spec: Any) -> FakeContainer:
        self.created.append(spec)
        result = self.make(spec)
        if isinstance(result, Exception):
            raise result
        assert isinstance(result, FakeContainer)
        return result

    def get(self, name: str) -> FakeContainer:
        raise NotFound("no such container")

    def list(self, all: bool, filters: dict[str, str]) -> list[FakeContainer]:
        return self.existing


class FakeClient:
    def __init__(
        self,
        make: Any = None,
        existing: list[FakeContainer] | None = None,
        *,
        answers: bool = True,
    ) -> None:
        self.containers = FakeContainers(make, existing)
        self.answers = answers
        self.pings = 0
        self.api = self  # DockerClient.api: the low-level client, a requests.Session
        self.calls: list[str] = []

    def close(self) -> None:
        self.calls.append("close")

    def ping(self) -> bool:
        self.pings += 1
        self.calls.append("ping")
        if not self.answers:
            import requests

            raise requests.exceptions.ConnectionError("Connection aborted: no such file")
        return True


def go(tmp_path: Path, container: FakeContainer | Exception, **kw: Any) -> Any:
    d = run_dir(tmp_path)
    client = FakeClient(lambda spec: container, answers=kw.pop("answers", True))
    events: list[dict[str, Any]] = []
    runner = DockerRunner(client, opts(**kw.pop("opts", {})), grace_s=1, env={})
    outcome = runner.run(d, timeout_s=kw.pop("timeout_s", 30), on_event=events.append)
    return outcome, events, (d / "container.log").read_text()


def test_a_run_streams_events_keeps_the_log_and_removes_the_container(tmp_path: Path) -> None:
    c = FakeContainer(
        "x",
        lines=[b'{"event": "phase", "phase": "load"}\n', b"plain text\n", b'{"event": "done"}'],
    )
    outcome, events, log = go(tmp_path, c)
    assert outcome.exit_code == 0 and not (outcome.timed_out or outcome.oom_killed)
    assert [e["event"] for e in events] == ["phase", "done"]
    assert log.splitlines() == [
        '{"event": "phase", "phase": "load"}',
        "plain text",
        '{"event": "done"}',
    ]
    assert c.calls == ["start", "remove"]


def test_oom_killed_state_is_reported(tmp_path: Path) -> None:
    outcome, _, _ = go(tmp_path, FakeContainer("x", exit_code=137, oom=True), opts={"memory": "1g"})
    assert outcome.oom_killed and outcome.exit_code == 137
    assert "1g" in outcome.detail and "docker.memory" in outcome.detail


def test_timeout_stops_the_container(tmp_path: Path) -> None:
    c = FakeContainer("x", hang=True)
    outcome, _, _ = go(tmp_path, c, timeout_s=0.3)
    assert outcome.timed_out and outcome.exit_code == 143
    assert c.calls == ["start", "stop(1)", "remove"]


def test_missing_image_names_make_images(tmp_path: Path) -> None:
    outcome, _, log = go(tmp_path, ImageNotFound("No such image"))
    assert outcome.failure == "ImageNotFound" and outcome.exit_code is None
    assert "make images" in outcome.detail and "make images" in log


def test_no_gpu_runtime_names_the_setting(tmp_path: Path) -> None:
    err = APIError('could not select device driver "" with capabilities: [[gpu]]')
    c = FakeContainer("x", start_error=err)
    outcome, _, _ = go(tmp_path, c)
    assert outcome.failure == "GpuUnavailable" and "docker.gpus: none" in outcome.detail
    assert c.calls == ["start", "remove"]  # created, refused at start, removed


def test_engine_lost_mid_run(tmp_path: Path) -> None:
    import requests

    c = FakeContainer("x", wait_error=requests.exceptions.ConnectionError("gone"))
    outcome, _, _ = go(tmp_path, c, answers=False)
    assert outcome.failure == "EngineUnavailable" and outcome.exit_code is None
    assert "stopped answering" in outcome.detail and "gone" in outcome.detail
    assert c.calls == ["start", "remove"]  # the remove is tried; a dead engine refuses it


def test_engine_that_answers_but_cannot_say_how_the_run_ended(tmp_path: Path) -> None:
    c = FakeContainer("x", wait_error=APIError("500 Server Error: boom"))
    outcome, _, _ = go(tmp_path, c)
    assert outcome.failure == "DockerError" and "boom" in outcome.detail


def test_engine_gone_after_the_container_exited(tmp_path: Path) -> None:
    # dockerd stopping sends its containers SIGTERM: exit 143, then the engine is gone.
    outcome, _, _ = go(tmp_path, FakeContainer("x", exit_code=143), answers=False)
    assert outcome.failure == "EngineUnavailable" and outcome.exit_code == 143
    assert "exited with code 143" in outcome.detail


def test_the_engine_check_uses_a_new_connection(tmp_path: Path) -> None:
    # A stopping dockerd still answers on connections it has open: drop them, then ping.
    d = run_dir(tmp_path)
    client = FakeClient(lambda spec: FakeContainer("x", exit_code=1))
    outcome = DockerRunner(client, opts(), grace_s=1, env={}).run(d, timeout_s=30, on_event=print)
    assert outcome.failure is None and outcome.exit_code == 1
    assert client.calls == ["close", "ping"]


def test_engine_gone_before_the_container_starts(tmp_path: Path) -> None:
    import requests

    err = requests.exceptions.ConnectionError("Connection aborted: FileNotFoundError")
    outcome, _, log = go(tmp_path, err, answers=False)
    assert outcome.failure == "EngineUnavailable" and "FileNotFoundError" in outcome.detail
    assert "stopped answering" in log
    # the same refusal from an engine that answers is the engine's own error
    outcome, _, _ = go(tmp_path / "again", err)
    assert outcome.failure == "DockerError"


def test_sigkill_from_outside_is_killed_externally(tmp_path: Path) -> None:
    outcome, _, _ = go(tmp_path, FakeContainer("x", exit_code=137, oom=False))
    assert outcome.failure == "KilledExternally" and outcome.exit_code == 137
    assert not (outcome.timed_out or outcome.interrupted or outcome.oom_killed)
    for words in ("SIGKILL", "137", "docker kill", "not an OOM kill", "--resume"):
        assert words in outcome.detail, words


def test_an_early_sigterm_from_outside_is_killed_externally(tmp_path: Path) -> None:
    # `docker stop` before the harness installed its handler: exit 143, no error.json.
    outcome, _, _ = go(tmp_path, FakeContainer("x", exit_code=143, oom=False))
    assert outcome.failure == "KilledExternally" and outcome.exit_code == 143
    for words in ("SIGTERM", "143", "docker stop", "--resume"):
        assert words in outcome.detail, words


def test_a_sigterm_the_harness_recorded_is_left_to_its_error_json(tmp_path: Path) -> None:
    # `docker stop` later in the run: the harness wrote error.json (Terminated), then exit 143;
    # classify() names the phase it was stopped in.
    class Recording(FakeContainer):
        def start(self) -> None:
            super().start()
            (run_dir_of[0] / "error.json").write_text('{"type": "Terminated", "message": "x"}')

    run_dir_of = [tmp_path / "study_20261122T000000Z" / "runs" / "001_c1_pytorch_abcdef12"]
    outcome, _, _ = go(tmp_path, Recording("x", exit_code=143, oom=False))
    assert outcome.exit_code == 143 and outcome.failure is None and outcome.detail is None


def test_our_own_sigkill_on_timeout_is_a_timeout(tmp_path: Path) -> None:
    # The harness ignored SIGTERM, so the engine SIGKILLed it after the grace: exit 137.
    c = FakeContainer("x", hang=True, stop_exit=137)
    outcome, _, _ = go(tmp_path, c, timeout_s=0.3)
    assert outcome.timed_out and outcome.exit_code == 137 and outcome.failure is None


def test_our_own_sigterm_on_timeout_is_a_timeout(tmp_path: Path) -> None:
    c = FakeContainer("x", hang=True, stop_exit=143)
    outcome, _, _ = go(tmp_path, c, timeout_s=0.3)
    assert outcome.timed_out and outcome.exit_code == 143 and outcome.failure is None


def test_container_removed_from_outside(tmp_path: Path) -> None:
    outcome, _, _ = go(tmp_path, FakeContainer("x", wait_error=NotFound("No such container")))
    assert outcome.failure == "KilledExternally" and "docker rm -f" in outcome.detail


def test_a_clean_exit_does_not_ping_the_engine(tmp_path: Path) -> None:
    d = run_dir(tmp_path)
    client = FakeClient(lambda spec: FakeContainer("x"))
    DockerRunner(client, opts(), grace_s=1, env={}).run(d, timeout_s=30, on_event=print)
    assert client.pings == 0


def test_reaper_removes_only_containers_of_dead_owners_on_this_host() -> None:
    dead_pid = 2**22 + 12345  # above pid_max defaults: no such process
    live = str(os.getppid())
    cs = [
        FakeContainer("dead", {"llem.owner_pid": str(dead_pid), "llem.host": "me"}),
        FakeContainer("alive", {"llem.owner_pid": live, "llem.host": "me"}),
        FakeContainer("elsewhere", {"llem.owner_pid": str(dead_pid), "llem.host": "other"}),
        FakeContainer("garbled", {"llem.owner_pid": "x", "llem.host": "me"}),
    ]
    assert reap_orphans(FakeClient(existing=cs), host="me") == ["dead"]
    assert [c.name for c in cs if "remove" in c.calls] == ["dead"]


def test_a_hub_cache_outside_the_hf_home_is_mounted_too(tmp_path: Path) -> None:
    d = run_dir(tmp_path)
    spec = container_spec(opts(hub_cache_dir=Path("/fast/hub")), d, env={}, owner_pid=1)
    assert spec["volumes"]["/fast/hub"] == {"bind": "/llem/hf-hub", "mode": "rw"}
    assert spec["environment"]["HF_HUB_CACHE"] == "/llem/hf-hub"
    plain = container_spec(opts(), d, env={}, owner_pid=1)
    assert "HF_HUB_CACHE" not in plain["environment"]

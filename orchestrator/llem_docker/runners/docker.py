"""DockerRunner: one fresh container per run, removed once its logs are saved.

The container runs `llem-harness run /llem/run` as the calling user, with the run directory
and the HF cache mounted. Its output streams into container.log and the host display. A
timeout or Ctrl+C stops the container itself (SIGTERM through docker-init, then SIGKILL), and
`finally` removes it, so no run leaves a container behind; containers of orchestrators that
died anyway are reaped at the next start.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.markup import escape

from llem_docker.images import check_image, inspect_image
from llem_docker.runners.base import EventHandler, RunOutcome
from llem_docker.runners.docker_engine import (
    NO_GPU_DRIVER,
    ContainerOptions,
    connect,
    container_spec,
    parse_gpus,
    reap_orphans,
)
from llem_docker.runners.stream import Events, drain, follow, lines_of, pump
from llem_docker.settings import RunnerSpec, Settings
from llem_harness.contract import LOG_FILE, RunnerInfo

READER_JOIN_S = 5.0


class DockerRunner:
    kind = "docker"

    def __init__(
        self,
        client: Any,
        opts: ContainerOptions,
        *,
        grace_s: float = 10.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.opts = opts
        self.grace_s = grace_s
        self.env = dict(os.environ if env is None else env)
        self._digest: str | None = None

    @classmethod
    def from_settings(cls, spec: RunnerSpec, settings: Settings) -> DockerRunner:
        """Connect, reap, check the image's handshake labels: each a clear error before
        anything runs."""
        assert spec.target is not None
        client = connect()
        reap_orphans(client)
        warning = check_image(client, spec.target, spec.backend or "backend", settings.env)
        if warning:
            Console(stderr=True).print(f"[yellow]warning:[/yellow] {escape(warning)}")
        cache, engines = (
            Path(str(settings.value(f"output.{key}"))).expanduser().absolute()
            for key in ("model_cache_dir", "engine_cache_dir")
        )
        for folder in (cache, engines):  # else the engine creates them, owned by root
            folder.mkdir(parents=True, exist_ok=True)
        opts = ContainerOptions(
            image=spec.target,
            gpus=parse_gpus(settings.value("docker.gpus"), source=settings.source("docker.gpus")),
            shm_size=settings.value("docker.shm_size"),
            memory=settings.value("docker.memory"),
            hf_cache_dir=cache,
            hf_hub_offline=bool(settings.value("docker.hf_hub_offline")),
            engine_cache_dir=engines,
            user=f"{os.getuid()}:{os.getgid()}",
        )
        return cls(client, opts, env=dict(settings.env))

    def info(self) -> RunnerInfo:
        if self._digest is None:
            from docker.errors import DockerException

            with contextlib.suppress(DockerException):
                self._digest = inspect_image(self.client, self.opts.image).digest
        return RunnerInfo(type="docker", image=self.opts.image, image_digest=self._digest)

    # -- one run ------------------------------------------------------------------------------
    def run(self, run_dir: Path, *, timeout_s: float, on_event: EventHandler) -> RunOutcome:
        spec = container_spec(self.opts, run_dir, env=self.env, owner_pid=os.getpid())
        log = (run_dir / LOG_FILE).open("w", encoding="utf-8")
        container: Any = None
        events: Events = queue.Queue()
        reader: threading.Thread | None = None
        try:
            try:
                container = self._create(spec)
                container.start()
            except Exception as exc:  # every engine error becomes an outcome
                return self._start_failure(exc, log)
            reader = threading.Thread(
                target=self._read_logs,
                args=(container, log, events),
                name="llem-docker-logs",
                daemon=True,
            )
            reader.start()
            timed_out, interrupted = follow(
                events,
                on_event,
                running=reader.is_alive,
                stop=lambda: self._stop(container),
                timeout_s=timeout_s,
            )
            return self._ended(container, events, on_event, timed_out, interrupted, timeout_s)
        finally:
            if reader is not None:
                reader.join(READER_JOIN_S)
            if container is not None:
                self._remove(container)
            log.close()

    def _create(self, spec: dict[str, Any]) -> Any:
        """Create (never pull: a missing image is an error that names `make images`)."""
        from docker.errors import APIError, NotFound

        with contextlib.suppress(NotFound):  # a leftover of an earlier attempt at this run
            self.client.containers.get(spec["name"]).remove(force=True)
        try:
            return self.client.containers.create(**spec)
        except APIError as exc:
            if exc.status_code == 409:  # the name was taken in between: one retry
                self.client.containers.get(spec["name"]).remove(force=True)
                return self.client.containers.create(**spec)
            raise

    @staticmethod
    def _read_logs(container: Any, log: IO[str], events: Events) -> None:
        with contextlib.suppress(Exception):  # the engine went away: _ended reports it
            pump(lines_of(container.logs(stream=True, follow=True)), log, events)

    def _stop(self, container: Any) -> None:
        """SIGTERM (the harness writes error.json), `grace_s`, then SIGKILL; a second Ctrl+C
        skips the grace."""
        try:
            container.stop(timeout=int(self.grace_s))
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):
                container.kill()
        except Exception:
            with contextlib.suppress(Exception):
                container.kill()

    def _ended(
        self,
        container: Any,
        events: Events,
        on_event: EventHandler,
        timed_out: bool,
        interrupted: bool,
        timeout_s: float,
    ) -> RunOutcome:
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        try:
            status = container.wait(timeout=60)
            container.reload()
        except (DockerException, RequestException) as exc:
            return RunOutcome(
                exit_code=None,
                timed_out=timed_out,
                interrupted=interrupted,
                failure="DockerUnavailable",
                detail=f"lost the Docker engine while the run was going: {exc}",
            )
        state = container.attrs.get("State", {})
        code = int(status.get("StatusCode", state.get("ExitCode", -1)))
        oom = bool(state.get("OOMKilled"))
        if not interrupted:
            drain(events, on_event)
        detail = None
        if timed_out:
            detail = f"timed out after {timeout_s:g} s; container stopped"
        elif interrupted:
            detail = "interrupted (Ctrl+C); container stopped"
        elif oom:
            limit = self.opts.memory or "the host's memory"
            detail = (
                f"the container was OOM-killed (exit {code}): it needed more than {limit}. "
                "Fix: raise docker.memory in the user config, or shrink the batch or model"
            )
        return RunOutcome(
            exit_code=code,
            timed_out=timed_out,
            interrupted=interrupted,
            oom_killed=oom,
            detail=detail,
            process_s=_seconds_between(state.get("StartedAt"), state.get("FinishedAt")),
        )

    def _start_failure(self, exc: Exception, log: IO[str]) -> RunOutcome:
        from docker.errors import ImageNotFound

        text = str(exc)
        if isinstance(exc, ImageNotFound):
            failure = "ImageNotFound"
            detail = (
                f"image `{self.opts.image}` is not on this machine. Fix: build it with "
                "`make images` (or pull it with `make images PULL=1`), or point "
                "`images.<backend>` in the user config (or LLEM_RUNNER_<BACKEND>=docker:<image>) "
                "at an image you have"
            )
        elif NO_GPU_DRIVER in text:
            failure = "GpuUnavailable"
            detail = (
                "Docker could not give the container a GPU (`could not select device driver`): "
                "this host has no NVIDIA container runtime. Fix: install the NVIDIA Container "
                "Toolkit, or run on the CPU with `docker.gpus: none` in the user config "
                "(or --gpus none)"
            )
        else:
            failure = "DockerError"
            detail = f"the Docker engine refused the run: {text}"
        log.write(f"llem-docker: {detail}\n")
        return RunOutcome(exit_code=None, failure=failure, detail=detail)

    @staticmethod
    def _remove(container: Any) -> None:
        """Remove the container even through a Ctrl+C; a dead engine leaves it for the reaper."""
        for _ in range(3):
            try:
                container.remove(force=True)
                return
            except KeyboardInterrupt:
                continue
            except Exception:  # already gone, or the engine went away
                return


def _seconds_between(start: str | None, end: str | None) -> float | None:
    """Docker's RFC 3339 timestamps (nanoseconds, Z) → seconds between them."""
    if not start or not end or start.startswith("0001-"):
        return None

    def parse(ts: str) -> datetime:
        head, _, frac = ts.rstrip("Z").partition(".")
        return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")

    try:
        return (parse(end) - parse(start)).total_seconds()
    except ValueError:
        return None

"""DockerRunner: one fresh container per run, removed once its logs are saved.

The container runs `llem-harness run /llem/run` as the calling user, with the run directory
and the HF cache mounted. Its output streams into container.log and the host display. A
timeout or Ctrl+C stops the container itself (SIGTERM through docker-init, then SIGKILL), and
`finally` removes it, so no run leaves a container behind; containers of orchestrators that
died anyway are reaped at the next start.

Every call to the engine has a time limit (ENGINE_TIMEOUT_S; a stop adds its grace), so an
engine that goes away never blocks a study: the run fails with EngineUnavailable and the
study loop stops there. A container that someone else kills or removes is KilledExternally.
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

from llem_docker.config.settings import RunnerSpec, Settings
from llem_docker.execution.images import check_image, inspect_image
from llem_docker.execution.runners.base import (
    ENGINE_LOST,
    KILLED_EXTERNALLY,
    EventHandler,
    RunOutcome,
)
from llem_docker.execution.runners.container import cache_dirs, parse_gpus
from llem_docker.execution.runners.docker_engine import (
    AUTO,
    NO_GPU_DRIVER,
    ContainerOptions,
    connect,
    container_spec,
    first_line,
    reap_orphans,
    resolve_network,
)
from llem_docker.execution.runners.stream import END, Events, drain, follow, lines_of, pump
from llem_harness.host_api import (
    ERROR_FILE,
    EXPERIMENT_FILE,
    LOG_FILE,
    RunnerInfo,
    RunRequest,
    host_has_rapl,
    needs_hub,
)

READER_JOIN_S = 5.0
ENGINE_TIMEOUT_S = 60.0  # each call to the engine (the log stream aside, which ends with it)
WAIT_S = 60  # for the exit status, once the log stream has ended
SIGKILL_EXIT = 137  # 128 + SIGKILL: what the engine reports for `docker kill`
SIGTERM_EXIT = 143  # 128 + SIGTERM: `docker stop` before the harness could record it
RESUME_FIX = "run it again with `llem-docker run STUDY --resume RESULTS_DIR`"


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
        client = connect(ENGINE_TIMEOUT_S)
        reap_orphans(client)
        warning = check_image(client, spec.target, spec.backend or "backend", settings.env)
        if warning:
            Console(stderr=True).print(f"[yellow]warning:[/yellow] {escape(warning)}")
        cache, engines, hub = cache_dirs(settings)
        offline = bool(settings.docker.hf_hub_offline)
        network = resolve_network(
            client,
            settings.docker.network,
            hf_hub_offline=offline,
            source=settings.source("docker.network"),
        )
        opts = ContainerOptions(
            image=spec.target,
            gpus=parse_gpus(settings.docker.gpus, source=settings.source("docker.gpus")),
            shm_size=settings.docker.shm_size,
            memory=settings.docker.memory,
            hf_cache_dir=cache,
            hf_hub_offline=offline,
            engine_cache_dir=engines,
            user=f"{os.getuid()}:{os.getgid()}",
            hub_cache_dir=hub,
            host_rapl=host_has_rapl(),
            network=network,
        )
        return cls(client, opts, env=dict(settings.env))

    def info(self) -> RunnerInfo:
        if self._digest is None:
            from docker.errors import DockerException
            from requests.exceptions import RequestException

            with contextlib.suppress(DockerException, RequestException):  # the engine is gone
                self._digest = inspect_image(self.client, self.opts.image).digest
        return RunnerInfo(type="docker", image=self.opts.image, image_digest=self._digest)

    # -- one run ------------------------------------------------------------------------------
    def run(self, run_dir: Path, *, timeout_s: float, on_event: EventHandler) -> RunOutcome:
        hub = self.opts.network != AUTO or _hub(run_dir)  # read only where it decides
        spec = container_spec(
            self.opts, run_dir, env=self.env, owner_pid=os.getpid(), needs_hub=hub
        )
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
            return self._ended(
                container, events, on_event, timed_out, interrupted, timeout_s, run_dir
            )
        finally:
            if reader is not None:
                reader.join(READER_JOIN_S)
            if container is not None:
                self._remove(container)
            log.close()

    def _create(self, spec: dict[str, Any]) -> Any:
        """Create (never pull: a missing image is an error that names `make images`)."""
        from docker.errors import APIError

        try:
            return self.client.containers.create(**spec)
        except APIError as exc:
            if exc.status_code == 409:  # a leftover of an earlier attempt at this run
                self.client.containers.get(spec["name"]).remove(force=True)
                return self.client.containers.create(**spec)
            raise

    @staticmethod
    def _read_logs(container: Any, log: IO[str], events: Events) -> None:
        try:
            with contextlib.suppress(Exception):  # the engine went away: _ended reports it
                pump(lines_of(container.logs(stream=True, follow=True)), log, events)
        finally:
            events.put(END)  # the container's stream ended with it: no need to poll on

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
        run_dir: Path,
    ) -> RunOutcome:
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        try:
            status = container.wait(timeout=WAIT_S)
            container.reload()
        except (DockerException, RequestException) as exc:
            return self._no_status(exc, timed_out=timed_out, interrupted=interrupted)
        state = container.attrs.get("State", {})
        code = int(status.get("StatusCode", state.get("ExitCode", -1)))
        oom = bool(state.get("OOMKilled"))
        if not interrupted:
            drain(events, on_event)
        detail = failure = None
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
        elif code != 0 and not self._answers():  # the engine stopped it on its way down
            failure = ENGINE_LOST
            detail = self._gone(f"the container exited with code {code}, then no answer")
        elif code == SIGKILL_EXIT or (  # ours come only on timeout or Ctrl+C (above)
            code == SIGTERM_EXIT and not (run_dir / ERROR_FILE).exists()  # (else: classify's)
        ):
            failure, detail = KILLED_EXTERNALLY, _killed(code)
        return RunOutcome(
            exit_code=code,
            timed_out=timed_out,
            interrupted=interrupted,
            oom_killed=oom,
            detail=detail,
            failure=failure,
            process_s=_seconds_between(state.get("StartedAt"), state.get("FinishedAt")),
        )

    def _no_status(self, exc: Exception, *, timed_out: bool, interrupted: bool) -> RunOutcome:
        """The engine could not say how the container ended: it was removed under us, the
        engine went away, or it refused."""
        from docker.errors import NotFound

        if isinstance(exc, NotFound):
            failure = KILLED_EXTERNALLY
            detail = (
                "the run's container was removed by something other than llem-docker "
                "(`docker rm -f`, a cleanup script) while it ran, so how it ended is unknown. "
                f"Fix: nothing in the experiment; {RESUME_FIX}"
            )
        elif timed_out or interrupted or self._answers():  # (our own stop decides the type)
            failure = "DockerError"
            detail = f"the Docker engine could not report how the run ended: {first_line(exc)}"
        else:
            failure, detail = ENGINE_LOST, self._gone(first_line(exc))
        return RunOutcome(
            exit_code=None,
            timed_out=timed_out,
            interrupted=interrupted,
            failure=failure,
            detail=detail,
        )

    def _answers(self) -> bool:
        """Does the engine answer a ping on a new connection (within ENGINE_TIMEOUT_S)?

        A stopping dockerd closes its socket first but still serves the connections it has
        open: a kept-alive one would answer for an engine that is going away."""
        try:
            self.client.api.close()  # drop kept-alive connections; new ones are made on use
            return bool(self.client.ping())
        except Exception:
            return False

    def _gone(self, what: str) -> str:
        where = self.env.get("DOCKER_HOST") or "the default socket"
        return (
            f"the Docker engine ({where}) stopped answering during the run: it was stopped or "
            f"restarted (last error: {what})"
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
        elif not self._answers():
            failure, detail = ENGINE_LOST, self._gone(f"the container could not start: {text}")
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


def _hub(run_dir: Path) -> bool:
    """Whether the run's experiment may need the Hugging Face hub (when its experiment.json
    cannot say, it may)."""
    try:
        req = RunRequest.model_validate_json((run_dir / EXPERIMENT_FILE).read_bytes())
    except (OSError, ValueError):
        return True
    config = req.config
    return needs_hub(config.model, config.weights, engine_args=bool(config.options().engine_args))


def _killed(code: int) -> str:
    """Why a run that exited by a signal llem-docker did not send is KilledExternally."""
    if code == SIGTERM_EXIT:  # the harness records a SIGTERM itself, once its handler is in
        return (
            f"the container was stopped with SIGTERM (exit code {code}) by something other "
            "than llem-docker (`docker stop`, or `kill` of its processes) before the harness "
            "had set itself up to record it (in its first moments). Fix: nothing in the "
            f"experiment; {RESUME_FIX}"
        )
    return (
        f"the container was killed with SIGKILL (exit code {code}) by something other "
        "than llem-docker (`docker kill`, `docker rm -f`, or `kill -9` of its "
        "processes); it was not an OOM kill: the engine reports OOMKilled = false "
        "(had the host itself run out of memory, `dmesg` would show the kernel's OOM "
        f"killer). Fix: nothing in the experiment; {RESUME_FIX}"
    )


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

"""What a person sees while a study runs: a progress bar, the current run and its phase,
one line per finished run, the thermal-gap countdown, and the final summary table."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llem_docker.store.study_result import StudyResult
from llem_docker.study.view import human_s
from llem_harness.host_api import ExperimentResult

STATE_STYLE = {
    "completed": "green",
    "failed": "red",
    "interrupted": "yellow",
    "skipped": "dim",
    "pending": "dim",
    "queued": "dim",
    "running": "cyan",
    "aborted": "red",
}


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _joules(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} J"


class StudyDisplay:
    """A rich Progress with one task for the whole study. `console` may be quiet (JSON mode
    passes a stderr console so stdout stays clean for the final JSON)."""

    def __init__(self, console: Console, total: int) -> None:
        interactive = console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            auto_refresh=interactive,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.task = self.progress.add_task("starting", total=total)
        self.run_id: str | None = None
        self.phase: str | None = None

    def __enter__(self) -> StudyDisplay:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def _describe(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def gap(self, seconds: float, reason: str) -> None:
        """Wait out a thermal gap, counting down."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._describe(f"{reason}: {left:4.1f} s left")
            time.sleep(min(0.1, left))

    def start_run(self, run_id: str) -> None:
        self.run_id, self.phase = run_id, None
        self._describe(f"{run_id} · starting")

    def event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "phase" and isinstance(event.get("phase"), str):
            self.phase = event["phase"]
        elif event.get("event") == "warmup":
            self.phase = f"warmup {event.get('run', '')}".strip()
        else:
            return
        self._describe(f"{self.run_id} · {self.phase}")

    def end_run(
        self, run_id: str, state: str, result: ExperimentResult | None, error: str | None
    ) -> None:
        self.progress.advance(self.task)
        style = STATE_STYLE.get(state, "")
        line = f"[{style}]{state:>9}[/{style}] {escape(run_id)}"
        if result is not None:
            line += (
                f"  {fmt(result.throughput_tokens_per_s)} tok/s"
                f"  energy {_joules(result.energy.total_j)}"
            )
        if error:
            line += f"  [red]{escape(error)}[/red]"
        self.progress.console.print(line, highlight=False)

    def shrink(self, runs: int) -> None:
        """Fewer runs to go than counted (a capacity search that needed fewer probes)."""
        if runs > 0:
            total = self.progress.tasks[0].total or 0
            self.progress.update(self.task, total=max(total - runs, 0))

    def note(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)


def print_summary(console: Console, result: StudyResult, study_dir: str) -> None:
    table = Table(title=f"Study {result.study_name!r}: {result.state}", title_justify="left")
    for col, just in [
        ("run", "left"),
        ("state", "left"),
        ("tok/s", "right"),
        ("energy J", "right"),
        ("J/token", "right"),
        ("error", "left"),
    ]:
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for run in result.runs:
        style = STATE_STYLE.get(run.state, "")
        error = f"{run.error.type}: {run.error.message}" if run.error else ""
        table.add_row(
            run.run_id,
            f"[{style}]{run.state}[/{style}]",
            fmt(run.throughput_tokens_per_s),
            fmt(run.energy_total_j),
            fmt(run.energy_per_output_token_j, 4),
            escape(error.splitlines()[0][:120]) if error else "",
        )
    console.print(table)
    s = result.summary
    console.print(
        f"{s.completed}/{s.runs} completed, {s.failed} failed, {s.skipped} skipped"
        + (f", {s.interrupted} interrupted" if s.interrupted else "")
        + (f", {s.pending} not started" if s.pending else "")
        + f"; total energy {_joules(s.total_energy_j)} ({s.runs_with_energy} runs with energy)"
        + f"; wall time {human_s(result.wall_time_s)}",
        highlight=False,
    )
    console.print(f"results: {escape(study_dir)}", highlight=False)

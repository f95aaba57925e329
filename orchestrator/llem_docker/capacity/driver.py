"""One capacity search in the study loop: probe after probe, each an ordinary run (its own
folder, container and manifest entry), the next rate chosen from the verdicts so far
(search.py), until the search is over. A resumed search replays the verdicts of the probes
that completed before and goes on from there; a probe that fails (not one that misses the
SLO: one that gives no result) ends the search as failed, and `--resume` runs that probe
again."""

from __future__ import annotations

import shutil

from rich.markup import escape

from llem_docker.capacity.judge import judge
from llem_docker.capacity.search import STATUS_TEXT, Probe, Verdict, next_rate, verdict
from llem_docker.execution.session import Session, Step
from llem_docker.store.layout import StudyDir
from llem_docker.store.manifest import RunError, SearchEntry, utc_now
from llem_docker.study.plan import PlannedRun
from llem_harness.host_api import ExperimentResult


def run_search(session: Session, search: PlannedRun) -> Step:
    """Run the search's probes; its manifest entry says how it ended."""
    spec = search.search
    assert spec is not None
    manifest = session.manifest
    entry = manifest.search(search.run_id)
    entry.state, entry.started_at = "running", utc_now()
    manifest.write(session.study_dir)
    slo = search.point.config.serving_options().slo
    probes: list[Probe] = []
    while (rate := next_rate(spec, probes)) is not None:
        run = search.probe_run(len(probes) + 1, rate)
        result = _kept(session, run)
        if result is None:
            step = _probe(session, run)
            if step.result is None:
                why = f"probe {run.probe} at {rate:g} req/s {step.state}"
                error = RunError(type="ProbeFailed", message=why)
                return _end(session, search, entry, step, error, len(probes) + 1)
            result = step.result
        j = judge(spec, slo, result)
        if j.passed is None:
            why = f"probe {run.probe} at {rate:g} req/s cannot be judged: {j.why}"
            error = RunError(type="ProbeUnjudged", message=why)
            return _end(session, search, entry, Step("failed"), error, len(probes) + 1)
        probes.append(Probe(rate, j.passed))
        mark = "[green]meets[/green]" if j.passed else "[yellow]misses[/yellow]"
        session.display.note(
            f"  probe {run.probe} at {rate:g} req/s {mark} the SLO: {escape(j.why)}"
        )
    found = verdict(spec, probes)
    assert found is not None
    session.display.note(f"[bold]{escape(search.run_id)}[/bold]: {describe(found, len(probes))}")
    return _end(session, search, entry, Step("completed"), None, len(probes))


def describe(found: Verdict, n_probes: int) -> str:
    """One line: the capacity, its bracket and how the search ended."""
    probes = f"{n_probes} probe" + "s" * (n_probes != 1)
    if found.capacity is None:
        return f"no capacity in the range ({STATUS_TEXT[found.status]}; {probes})"
    top = "" if found.failed is None else f", fails at {found.failed:g}"
    return (
        f"capacity {found.capacity:g} req/s (meets the SLO at {found.passed:g}{top}; "
        f"{STATUS_TEXT[found.status]}; {probes})"
    )


def _kept(session: Session, run: PlannedRun) -> ExperimentResult | None:
    """The result of this probe from before a resume, if it probed the same rate; a probe
    recorded at another rate (its earlier probes changed) goes, with every later one."""
    manifest = session.manifest
    for e in manifest.probes(run.search_id or ""):
        if e.probe == run.probe and e.request_rate == run.point.config.serving_options().rate:
            return session.results.get(e.run_id)
        if (e.probe or 0) >= (run.probe or 0):
            manifest.runs.remove(e)
            session.results.pop(e.run_id, None)
            shutil.rmtree(StudyDir(session.study_dir).run(e.run_id).path, ignore_errors=True)
    return None


def _probe(session: Session, run: PlannedRun) -> Step:
    session.manifest.add_probe(run)
    session.prepare(run)
    return session.run_one(run)


def _end(
    session: Session,
    search: PlannedRun,
    entry: SearchEntry,
    step: Step,
    error: RunError | None,
    made: int,
) -> Step:
    """Record how the search ended; the progress bar drops the probes it did not need."""
    session.display.shrink(search.most_runs - made)
    entry.state = "interrupted" if step.interrupted else step.state
    entry.ended_at, entry.error = utc_now(), error
    session.manifest.write(session.study_dir)
    return step

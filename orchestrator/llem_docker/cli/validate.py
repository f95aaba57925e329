"""`llem-docker validate PATH...`: the validity rules (docs/validity.md) over results already on
disk, without rerunning: every result.json under each PATH (a study folder, or a folder of
them), judged with the timeseries beside it. Prints a table of rules × verdict counts with the
runs that failed, and with --json writes every run's verdict. Each run is judged by the
thresholds it recorded (its profile's), or by `--profile`'s. Also `strict_code`: what `run
--strict` does with a finished study."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llem_docker.errors import ConfigError
from llem_harness.host_api import (
    POLICIES,
    RESULT_FILE,
    RULES_VERSION,
    TIMESERIES_FILE,
    ExperimentResult,
    evaluate,
    read_timeseries,
)

out = Console(soft_wrap=False)


def validate(
    paths: list[Path] = typer.Argument(..., help="study folders, or folders holding them"),
    json_out: Path | None = typer.Option(None, "--json", help="write every run's verdict here"),
    profile: str | None = typer.Option(
        None,
        "--profile",
        help="judge by this profile's thresholds (quick | standard | publication); default: "
        "the ones each run recorded, else the standard profile's",
    ),
) -> None:
    """Judge stored results by the validity rules, without rerunning them."""
    if profile is not None and profile not in POLICIES:
        raise ConfigError(
            f"unknown profile `{profile}`",
            source="--profile",
            fix=f"use one of {', '.join(POLICIES)}",
        )
    files = sorted({f for p in paths for f in _results(p)})
    verdicts = {}
    for f in files:
        res = ExperimentResult.model_validate_json(f.read_text(encoding="utf-8"))
        ts = f.parent / TIMESERIES_FILE
        recorded = res.validity.policy if res.validity is not None else None
        policy = POLICIES[profile] if profile is not None else recorded
        verdicts[f] = evaluate(res, read_timeseries(ts) if ts.is_file() else [], policy=policy)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    failing: dict[str, list[str]] = defaultdict(list)
    for f, v in verdicts.items():
        for r in v.rules:
            counts[r.rule][r.status] += 1
            if r.status == "fail":
                failing[r.rule].append(
                    f"{f.parent.parent.parent.name}/{f.parent.name} ({r.reason})"
                )
    table = Table(title=f"validity of {len(files)} stored runs (rules {RULES_VERSION})")
    for col in ("rule", "pass", "fail", "unknown", "first failing runs"):
        table.add_column(col, justify="right" if col in ("pass", "fail", "unknown") else "left")
    for rule, c in counts.items():
        more = len(failing[rule]) - 2
        first = "; ".join(failing[rule][:2]) + (f"; +{more} more" if more > 0 else "")
        table.add_row(rule, str(c["pass"]), str(c["fail"]), str(c["unknown"]), escape(first))
    out.print(table)
    valid = Counter(str(v.valid).lower() for v in verdicts.values())
    out.print(f"runs valid: {valid['true']}, invalid: {valid['false']}, "
              f"not judged in full (no GPU figures): {valid['none']}")  # fmt: skip
    if json_out is not None:
        doc = {str(f): v.model_dump(mode="json") for f, v in verdicts.items()}
        json_out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        out.print(f"verdicts: {json_out}")


def _results(path: Path) -> list[Path]:
    if not path.is_dir():
        raise ConfigError(f"{path} is not a folder", source=str(path), fix="give a study folder")
    found = sorted(path.rglob(RESULT_FILE))
    if not found:
        raise ConfigError(
            f"no {RESULT_FILE} under {path}", source=str(path), fix="give a folder holding runs"
        )
    return found


STRICT_EXIT = 3  # `run --strict`: every run completed, but a point is invalid


def strict_code(study_dir: Path, *, quiet: bool) -> int:
    """`run --strict`'s verdict on a finished study: 3 when a point is invalid, else 0; the
    invalid points and their failing rules go to stderr."""
    from llem_docker.report.points import build_report

    invalid = [p for p in build_report(study_dir).points if p.valid is False]
    if not invalid:
        return 0
    if not quiet:
        err = Console(stderr=True)
        err.print(f"[red]--strict:[/red] {len(invalid)} invalid point(s):")
        for p in invalid:
            what = ", ".join(f"{k}={v}" for k, v in p.swept.items()) or p.config_hash
            err.print(f"  {escape(p.backend)} {escape(what)}: {escape(', '.join(p.invalid_rules))}")
        err.print(f"see `llem-docker report {escape(str(study_dir))} --validity`")
    return STRICT_EXIT

"""Two environment records (envrecord.py) field by field: the same, different, or unknown,
with a severity: a different image digest refuses a rerun unless allowed, a different GPU
model or driver warns (and the warning is carried into the comparison's verdict), anything
else is information."""

from __future__ import annotations

from typing import Literal

from llem_docker.review.envrecord import (
    BACKEND_FIELDS,
    MACHINE_FIELDS,
    NOT_APPLICABLE,
    EnvRecord,
    Fact,
    Scalar,
    _Model,
    distinct,
)

Status = Literal["same", "different", "unknown"]
Severity = Literal["refuse", "warn", "info"]


class FieldDiff(_Model):
    """One field of two records: the same, different, or unknown (null on either side)."""

    field: str  # e.g. gpu_model, backends.pytorch.image_digest
    status: Status
    severity: Severity
    original: Scalar
    current: Scalar
    reason: str | None = None  # why it is unknown


WARN_FIELDS = ("gpu_model", "driver_version")


def _severity(name: str, status: Status, allow_image_change: bool) -> Severity:
    """A different image digest refuses (warns when allowed); so does nothing else. A
    different GPU model or driver warns, as does an image digest that cannot be compared."""
    if name.endswith(".image_digest") and status != "same":
        return "refuse" if status == "different" and not allow_image_change else "warn"
    return "warn" if status == "different" and name in WARN_FIELDS else "info"


def _compare(name: str, a: Fact, b: Fact, allow_image_change: bool) -> FieldDiff:
    reason = None
    if a.value is None or b.value is None:
        na = all((f.unknown_reason or "").startswith(NOT_APPLICABLE) for f in (a, b))
        status: Status = "same" if na and a.value is None and b.value is None else "unknown"
        if status == "unknown":
            why = [f"{side}: {f.unknown_reason}" for side, f in (("study", a), ("here", b))
                   if f.value is None]  # fmt: skip
            reason = "; ".join(why)
    else:
        status = "same" if a.value == b.value else "different"
    severity = _severity(name, status, allow_image_change)
    return FieldDiff(field=name, status=status, severity=severity, original=a.value,
                     current=b.value, reason=reason)  # fmt: skip


def diff(
    original: EnvRecord, current: EnvRecord, *, allow_image_change: bool = False
) -> list[FieldDiff]:
    """Every field of `original` against `current`: the machine's, then each backend's (the
    backends of either record)."""
    out = [
        _compare(f, getattr(original, f), getattr(current, f), allow_image_change)
        for f in MACHINE_FIELDS
    ]
    missing = Fact(unknown_reason="this backend is not in the record")
    for b in distinct([*original.backends, *current.backends]):
        ob, cb = original.backends.get(b), current.backends.get(b)
        for f in BACKEND_FIELDS:
            a = getattr(ob, f) if ob else missing
            c = getattr(cb, f) if cb else missing
            out.append(_compare(f"backends.{b}.{f}", a, c, allow_image_change))
    return out


def render_lines(diffs: list[FieldDiff]) -> list[str]:
    """One line per field, for a terminal or a Markdown code block: severity, status, the
    field, and the two values (or why one is unknown)."""
    lines = []
    for d in diffs:
        if d.status == "unknown":
            what = d.reason or "unknown"
        elif d.status == "same":
            what = "n/a" if d.original is None else repr(d.original)
        else:
            what = f"{d.original!r} (study) → {d.current!r} (here)"
        lines.append(f"{d.severity:<6} {d.status:<9} {d.field}: {what}")
    return lines

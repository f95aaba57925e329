"""Whether one probe met the search's rule, from its result.json alone."""

from __future__ import annotations

from dataclasses import dataclass

from llem_harness.host_api import SLO, CapacitySearch, ExperimentResult

OBJECTIVES = ("ttft_ms", "tpot_ms")


@dataclass(frozen=True)
class Judgement:
    passed: bool | None  # None: the result cannot say (the reason is in `why`)
    attainment: dict[str, float]  # what the rule read: per objective, or {"request": share}
    why: str


def judge(spec: CapacitySearch, slo: SLO, result: ExperimentResult) -> Judgement:
    """`per: objective`: every objective set in the SLO is met by at least `attainment` of
    the requests (its own share, `slo_attainment_each`); `per: request`: at least
    `attainment` of the requests met all of them at once (`slo_attainment`)."""
    s = result.serving
    if s is None:
        return Judgement(None, {}, "the result has no serving section")
    need = spec.attainment
    if spec.per == "request":
        if s.slo_attainment is None:
            return Judgement(None, {}, "the result has no SLO attainment")
        ok = s.slo_attainment >= need
        return Judgement(
            ok, {"request": s.slo_attainment}, _text(ok, "request", s.slo_attainment, need)
        )
    wanted = [o for o in OBJECTIVES if getattr(slo, o) is not None]
    missing = [o for o in wanted if o not in s.slo_attainment_each]
    if missing:
        return Judgement(
            None,
            {},
            f"the result has no attainment for {', '.join(missing)} (a harness older than "
            "result schema 1.12: rebuild the images with `make images`)",
        )
    shares = {o: s.slo_attainment_each[o] for o in wanted}
    misses = [o for o in wanted if shares[o] < need]
    ok = not misses
    parts = [_text(shares[o] >= need, o, shares[o], need) for o in wanted]
    return Judgement(ok, shares, "; ".join(parts))


def _text(ok: bool, name: str, share: float, need: float) -> str:
    return f"{name} met by {share:.1%} {'≥' if ok else '<'} {need:.1%}"

"""The publication profile's longer window: whole passes, one after another, until the window
has lasted its minimum (llem_harness.window). The real harness run is test_harness_run's."""

from __future__ import annotations

from llem_harness.backends.base import PassResult
from llem_harness.window import merge, passes_note


def a_pass(n: int, t: float) -> PassResult:
    return PassResult(
        input_tokens=10 * n, output_tokens=4 * n, ttft_ms=[1.0] * n, lengths=[4] * n,
        spans=[(t, t + 1, 4)] * n, submitted=[t] * n, span_prompts=[10] * n,
    )  # fmt: skip


def test_passes_merge_in_order_with_every_list_aligned() -> None:
    first = a_pass(3, 0.0)
    merge(first, a_pass(3, 5.0))
    assert (first.input_tokens, first.output_tokens) == (60, 24)
    assert len(first.spans) == len(first.submitted) == len(first.span_prompts) == 6
    assert first.submitted == [0.0] * 3 + [5.0] * 3 and first.lengths == [4] * 6


def test_the_note_names_the_passes_and_the_requests() -> None:
    assert passes_note(1, 8, 60.0, "publication") is None
    note = passes_note(5, 8, 60.0, "publication")
    assert note is not None and "5 passes over the 8 prompts (40 requests)" in note
    assert "publication profile's 60 s" in note

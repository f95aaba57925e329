"""One request of the load generator, typed: what loadgen.py writes as a JSON line for each
request (times on the harness's time.monotonic() clock), and the view of a completed one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Completed:
    """A request that got its response (`ok`): every time is known."""

    id: int
    sent_s: float
    first_token_s: float
    last_token_s: float
    done_s: float
    prompt_tokens: int
    output_tokens: int

    @property
    def ttft_ms(self) -> float:
        return (self.first_token_s - self.sent_s) * 1000

    @property
    def e2e_ms(self) -> float:
        return (self.done_s - self.sent_s) * 1000

    @property
    def tpot_ms(self) -> float | None:
        n = self.output_tokens
        return (self.last_token_s - self.first_token_s) * 1000 / (n - 1) if n > 1 else None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    id: int
    scheduled_s: float
    sent_s: float | None  # None: it failed before it was sent
    first_token_s: float | None
    last_token_s: float | None
    done_s: float | None
    prompt_tokens: int | None
    output_tokens: int | None
    ok: bool
    status: int | None
    error: str | None
    text: str | None = None  # the response's text, when the load generator kept it

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestRecord:
        return cls(**data)

    def completed(self) -> Completed | None:
        """The completed view, or None for a failed request."""
        times = (self.sent_s, self.first_token_s, self.last_token_s, self.done_s)
        if not self.ok or any(t is None for t in times):
            return None
        sent, first, last, done = (float(t) for t in times if t is not None)
        return Completed(
            self.id,
            sent,
            first,
            last,
            done,
            int(self.prompt_tokens or 0),
            int(self.output_tokens or 0),
        )


def completed(records: list[RequestRecord]) -> list[Completed]:
    return [c for r in records if (c := r.completed()) is not None]

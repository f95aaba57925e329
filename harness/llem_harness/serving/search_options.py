"""`serving.search`: ask for the capacity (the highest request rate that meets the SLO)
instead of listing rates (docs/capacity.md).

The harness never sees it: the host runs the search, and every probe is an ordinary serving
run at one `serving.request_rate`, with `search` removed from its config. The model lives here,
beside the rest of the serving options, so that a study file is checked as one piece.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_PROBES = 50


class CapacitySearch(BaseModel):
    """The search's rule (what a probe must meet) and its budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: tuple[float, float] = Field(
        description="the lowest and the highest request rate to try, requests/s"
    )
    attainment: float = Field(
        0.99,
        gt=0.0,
        le=1.0,
        description="the share of requests that must meet the SLO (0.99: the SLO holds at the "
        "99th percentile); a failed request never meets it",
    )
    per: Literal["objective", "request"] = Field(
        "objective",
        description="objective: each objective of serving.slo on its own (TTFT p99 and TPOT "
        "p99, as MLPerf's Server scenario); request: every objective in the same request",
    )
    probes: int = Field(10, ge=2, le=MAX_PROBES, description="at most this many probes")
    tolerance: float = Field(
        0.05,
        gt=0.0,
        le=1.0,
        description="stop once the lowest failing rate is within this fraction above the "
        "highest passing one",
    )

    @model_validator(mode="after")
    def _check(self) -> CapacitySearch:
        low, high = self.rate
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
            raise ValueError(
                f"serving.search.rate must be two finite rates, lowest first, both above 0 "
                f"requests/s (for example [1, 256]), not [{low}, {high}]"
            )
        return self

    def probes_needed(self) -> int:
        """The most probes the search can take to reach its tolerance: the lowest rate, the
        bisection in log space, and the highest rate when no probe failed."""
        low, high = self.rate
        halvings = math.ceil(math.log2(math.log(high / low) / math.log1p(self.tolerance)))
        return 2 + max(halvings, 0)

    def most_probes(self) -> int:
        """The probes a dry run counts: the budget, or fewer where the tolerance is reached
        sooner."""
        return min(self.probes, self.probes_needed())

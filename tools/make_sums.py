"""Write examples/data/sums-200.jsonl: 200 additions of two whole numbers from 1 to 20, each
with its answer, for scoring answer quality with `metric: number` (docs/quality.md).

Made here, from a fixed seed, so the file is the project's own (its licence) and can be made
again byte for byte: `python tools/make_sums.py`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "examples" / "data" / "sums-200.jsonl"


def main() -> None:
    rng = random.Random(20261207)
    pairs = [(a, b) for a in range(1, 21) for b in range(1, 21)]
    rows = [
        {"prompt": f"What is {a}+{b}? Answer with a number.", "answer": str(a + b)}
        for a, b in rng.sample(pairs, 200)
    ]
    OUT.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} questions to {OUT}")


if __name__ == "__main__":
    main()

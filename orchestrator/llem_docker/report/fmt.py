"""Numbers as the report shows them: one rule for the terminal table, Markdown, HTML and the
figures' axis labels (CSV and JSON carry the unrounded values).

- `bounds(mean, low, high)`, a mean with its 95% interval, as the tables show it:
  `mean [low, high]`. The decimal place is the one two significant figures of half the
  interval's width give (never coarser than a whole number); each bound keeps at least two
  significant figures of its own, so a lower bound near zero does not read as 0:
  164, 651, 1394 tok/s → `736 [35, 7960]`; 2619.3 in [2137.2, 3101.4] → `2619 [2137, 3101]`.
- `interval(mean, half)`, a mean ± a half-width, rounded the same way: 2619.3 ± 482.1 →
  `2619 ± 480`; 0.00087771 ± 0.0000803 → `0.000878 ± 0.000080`.
- `spread(x)`, an sd or a half-width on its own: two significant figures, zeros kept
  (482.1 → `480`, 0.0000803 → `0.000080`); beside a mean, in that mean's notation.
- `num(x)`, a lone value (a mean without an interval, an axis tick): four significant figures,
  the whole part never rounded, trailing zeros dropped (2619.3 → `2619`, 123456.7 → `123457`,
  0.00087771 → `0.0008777`, 5.0 → `5`).
- Fixed-point notation while the magnitude is between 1e-6 and 1e9; scientific outside
  (`2.500e+12 ± 3.0e+10`). Zero is `0`.
- Not measured (None or NaN): `n/a`. Infinities: `inf`, `-inf`.

No SI prefixes: the unit is in the column header or axis label, so every number in a column
has the unit the header names.
"""

from __future__ import annotations

import math

NA = "n/a"
LOW, HIGH = 1e-6, 1e9  # fixed-point notation for magnitudes in [LOW, HIGH)


def _exponent(x: float, sig: int) -> int:
    """The decimal exponent of |x| once rounded to `sig` significant figures (9.96 → 1 at 2)."""
    return int(f"{abs(x):.{sig - 1}e}".split("e")[1])


def _fixed(x: float, decimals: int) -> str:
    text = f"{x:.{decimals}f}"
    if text.startswith("-") and not any(c in "123456789" for c in text):
        text = text[1:]  # no "-0" or "-0.00"
    return text


def _trim(text: str) -> str:
    if "e" in text:
        mantissa, exp = text.split("e")
        return _trim(mantissa) + "e" + exp
    return text.rstrip("0").rstrip(".") if "." in text else text


def _fixed_point(x: float) -> bool:
    return x == 0 or LOW <= abs(x) < HIGH


def _special(x: float | None) -> str | None:
    """The text of a missing, infinite or zero value; None for any other number."""
    if x is None or math.isnan(x):
        return NA
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return "0" if x == 0 else None


def num(x: float | None, sig: int = 4) -> str:
    """A lone value: `sig` significant figures, whole part kept, trailing zeros dropped."""
    if (text := _special(x)) is not None or x is None:
        return text or NA
    if not _fixed_point(x):
        return _trim(f"{x:.{sig - 1}e}")
    return _trim(_fixed(x, max(0, sig - 1 - _exponent(x, sig))))


def spread(x: float | None, mean: float | None = None) -> str:
    """An sd or a CI half-width: two significant figures, zeros kept. Beside a `mean`, the
    notation is the one `interval` gives that mean (no `0.0000101 ± … (sd 1.0e-07)`)."""
    if (text := _special(x)) is not None or x is None:
        return text or NA
    scale = max(abs(x), abs(mean) if mean is not None and math.isfinite(mean) else 0.0)
    return _two_figures(x) if _fixed_point(scale) else f"{x:.1e}"


def _two_figures(x: float) -> str:
    decimals = 1 - _exponent(x, 2)
    return _fixed(x, decimals) if decimals >= 0 else _fixed(round(x, decimals), 0)


def interval(mean: float | None, half: float | None) -> str:
    """`mean ± half`; the mean alone (as `num`) when there is no interval."""
    if mean is None or math.isnan(mean):
        return NA
    if half is None or math.isnan(half) or math.isinf(mean):
        return num(mean)
    half = abs(half)
    if half == 0 or math.isinf(half):
        return f"{num(mean)} ± {spread(half)}"
    if not _fixed_point(max(abs(mean), half)):  # all tiny, or something huge
        e_half = _exponent(half, 2)
        e_mean = _exponent(mean, 2) if mean else e_half
        return f"{mean:.{max(0, e_mean - e_half + 1)}e} ± {half:.1e}"
    return f"{_fixed(mean, max(0, 1 - _exponent(half, 2)))} ± {_two_figures(half)}"


def _bound(x: float, decimals: int, e_half: int) -> str:
    """One end of an interval: at `decimals`, or at two significant figures of its own."""
    if (text := _special(x)) is not None:
        return text
    if not _fixed_point(x):
        return f"{x:.{max(1, _exponent(x, 2) - e_half + 1)}e}"
    return _fixed(x, max(decimals, 1 - _exponent(x, 2)))


def bounds(mean: float | None, low: float | None, high: float | None) -> str:
    """`mean [low, high]`; the mean alone (as `num`) when there is no interval."""
    if mean is None or math.isnan(mean):
        return NA
    if low is None or high is None or math.isnan(low) or math.isnan(high) or math.isinf(mean):
        return num(mean)
    half = abs(high - low) / 2
    if half == 0 or math.isinf(half):
        return f"{num(mean)} [{num(low)}, {num(high)}]"
    e_half = _exponent(half, 2)
    decimals = max(0, 1 - e_half)
    if not _fixed_point(max(abs(mean), half)):  # all tiny, or something huge
        e_mean = _exponent(mean, 2) if mean else e_half
        head = f"{mean:.{max(0, e_mean - e_half + 1)}e}"
    else:
        head = _fixed(mean, decimals)
    return f"{head} [{_bound(low, decimals, e_half)}, {_bound(high, decimals, e_half)}]"

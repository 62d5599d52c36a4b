"""Sizes with K/M/G/T suffixes and fractions, as descriptions and commands write them."""

from __future__ import annotations

_SUFFIX = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20,
           "MB": 1 << 20, "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30,
           "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}


def parse_size(x, what: str = "size") -> int:
    """"4K" -> 4096, "1.5G", 4096, "0x1000" -> bytes. ValueError with a clear reason."""
    if isinstance(x, bool):
        raise ValueError(f"{what}: {x!r} is not a size")
    if isinstance(x, int):
        if x < 0:
            raise ValueError(f"{what}: {x} is negative")
        return x
    if isinstance(x, float):
        if not 0 <= x < float("inf"):  # negative, NaN and infinity are no sizes
            raise ValueError(f"{what}: {x} is not a size")
        return int(x)
    s = str(x).strip().replace("_", "")
    if not s:
        raise ValueError(f"{what}: empty size")
    if s.lower().startswith("0x"):
        try:
            return int(s, 16)
        except ValueError:
            raise ValueError(f"{what}: {x!r} is not a hex number") from None
    i = len(s)
    while i > 0 and s[i - 1].isalpha():
        i -= 1
    num, suf = s[:i], s[i:].upper()
    if suf not in _SUFFIX:
        raise ValueError(f"{what}: unknown suffix {s[i:]!r} in {x!r} (use K, M, G or T)")
    try:
        v = float(num)
    except ValueError:
        raise ValueError(f"{what}: {x!r} is not a size like 64M") from None
    if v < 0 or v != v or v == float("inf"):
        raise ValueError(f"{what}: {x!r} is not a size")
    return int(v * _SUFFIX[suf])


def parse_fraction(x, what: str = "fraction") -> float:
    """"50%" or 0.5 -> 0.5, within [0, 1]."""
    if isinstance(x, bool):
        raise ValueError(f"{what}: {x!r} is not a fraction")
    if isinstance(x, str):
        s = x.strip()
        try:
            v = float(s[:-1]) / 100 if s.endswith("%") else float(s)
        except ValueError:
            raise ValueError(f"{what}: {x!r} is not a fraction like 50%") from None
    else:
        v = float(x)
    if not 0 <= v <= 1:
        raise ValueError(f"{what}: {x!r} is outside 0..100%")
    return v


def fmt_size(n: int) -> str:
    for suf, mul in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= mul and n % mul == 0:
            return f"{n // mul}{suf}"
    for suf, mul in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= mul:
            return f"{n / mul:.1f}{suf}"
    return f"{n}B"


def fmt_ns(ns: float) -> str:
    """1234567 -> "1.235 ms"."""
    ns = float(ns)
    for unit, div in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= div:
            return f"{ns / div:.3f} {unit}"
    return f"{ns:.0f} ns"

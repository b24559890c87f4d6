"""Seeded randomness: one independent `random.Random` stream per patient and per shared artefact.

Streams are keyed by strings (``random.Random(str)`` hashes the text with SHA-512), so a stream never
depends on how many draws another stream made. That keeps patients independent of each other (the
generator could be split over processes by patient index) and keeps the genuine records identical
whatever the defect rate, because defects draw from their own stream.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Sequence
from itertools import accumulate
from typing import Generic, TypeVar

T = TypeVar("T")

_UUID_VERSION_CLEAR = ~(0xF000 << 64)
_UUID_VERSION_4 = 0x4000 << 64
_UUID_VARIANT_CLEAR = ~(0xC000 << 48)
_UUID_VARIANT_RFC4122 = 0x8000 << 48


def patient_rng(seed: int, index: int) -> random.Random:
    """The stream that generates everything about the person with this index."""
    return random.Random(f"patient-insights/person/{seed}/{index}")


def defect_rng(seed: int, index: int) -> random.Random:
    """The stream that decides and shapes the defects injected while writing this person's records."""
    return random.Random(f"patient-insights/defects/{seed}/{index}")


def named_rng(seed: int, name: str) -> random.Random:
    """A stream for an artefact shared by all patients (directory, agents, deleted bundles...)."""
    return random.Random(f"patient-insights/{name}/{seed}")


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID string drawn from `rng`; equal to ``str(uuid.UUID(int=bits, version=4))``."""
    n = (rng.getrandbits(128) & _UUID_VERSION_CLEAR | _UUID_VERSION_4) & _UUID_VARIANT_CLEAR
    h = "%032x" % (n | _UUID_VARIANT_RFC4122)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def hex_id(rng: random.Random, length: int = 32) -> str:
    """A lowercase hexadecimal identifier of `length` characters (vendor data ids, device ids)."""
    return f"{rng.getrandbits(4 * length):0{length}x}"


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's method for small means, a rounded normal for large ones)."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def clamp(value: float, low: float, high: float) -> float:
    """`value` limited to [low, high]."""
    return low if value < low else high if value > high else value


class Weighted(Generic[T]):
    """A fixed list of choices with weights, sampled with one uniform draw and a bisection."""

    __slots__ = ("_cum", "_items", "_total")

    def __init__(self, pairs: Sequence[tuple[T, float]]) -> None:
        self._items = [item for item, _ in pairs]
        self._cum = list(accumulate(weight for _, weight in pairs))
        self._total = self._cum[-1]

    def pick(self, rng: random.Random) -> T:
        """One item, drawn with probability proportional to its weight."""
        return self._items[bisect(self._cum, rng.random() * self._total)]


def rint(rng: random.Random, low: int, high: int) -> int:
    """A uniform integer in [low, high): a fast stand-in for ``rng.randrange(low, high)``."""
    return low + int(rng.random() * (high - low))


def rstep(rng: random.Random, low: int, high: int, step: int) -> int:
    """A uniform value of ``range(low, high, step)``: a fast stand-in for ``rng.randrange``."""
    return low + step * int(rng.random() * ((high - low) // step))

"""GF(2) helpers for the projection LFSR (docs/spec.md, section 4), evaluated at elaboration time.

Pure Python, no Amaranth. The hardware keeps a 64-bit *window* of the bit sequence ``s_t``:
window bit ``k`` is ``s_(t+k)``, so the window at ``t = 0`` is ``state0`` itself. Every later
sequence bit is a linear (XOR) function of a window; this module expresses those functions as
64-bit masks over the window bits, which the hardware turns into XOR trees of state bits.
"""

from __future__ import annotations

__all__ = ["MASK64", "TAPS", "splitmix64", "lfsr_state0", "sequence_masks", "leap_masks",
           "apply_masks"]

MASK64 = (1 << 64) - 1
#: ``s_(t+64) = s_t ^ s_(t+1) ^ s_(t+3) ^ s_(t+4)`` (x^64 + x^4 + x^3 + x + 1).
TAPS = (0, 1, 3, 4)


def splitmix64(z: int) -> int:
    """One splitmix64 output for input ``z`` (64-bit wrap-around arithmetic)."""
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def lfsr_state0(seed: int) -> int:
    """The LFSR window at t = 0: ``splitmix64(seed)``, or 1 if that is zero."""
    return splitmix64(seed) or 1


def sequence_masks(count: int) -> list[int]:
    """Masks ``m_k``, k < count: ``s_(t+k)`` is the XOR of the window bits selected by ``m_k``."""
    masks = [1 << k for k in range(min(count, 64))]
    for k in range(64, count):
        m = 0
        for tap in TAPS:
            m ^= masks[k - 64 + tap]
        masks.append(m)
    return masks


def leap_masks(steps: int) -> list[int]:
    """The window after ``steps`` sequence steps: new window bit i = XOR of old bits in mask i."""
    return sequence_masks(steps + 64)[steps:]


def apply_masks(masks: list[int], window: int) -> int:
    """Evaluate masks on a window: bit i of the result is the parity of ``masks[i] & window``."""
    return sum((bin(m & window).count("1") & 1) << i for i, m in enumerate(masks))


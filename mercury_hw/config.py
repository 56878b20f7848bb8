"""``MercuryConfig``: the single source of truth for every width and depth of the design.

Pure Python (no Amaranth, no torch), so the CLI, the generators, the testbenches and the replay
harness can all read it cheaply. Every hardware width derives from these fields; the golden model
receives the algorithmic ones as keyword arguments through :meth:`MercuryConfig.golden_kwargs`
(the golden model never imports this package).

The semantics of every field are normative in ``docs/spec.md``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields

ELEM_WIDTH = 8  # int8 activations and weights (docs/spec.md, section 2)
POLICIES = ("lru", "fifo")
MAX_ENTRIES = 4096
"""Largest MCACHE (sets x ways). The result buffer holds entries x pes accumulators (4096 x 8 x
32 bits = 1 Mbit at the defaults, a third of an LFE5U-85F's block RAM); beyond this the design
neither fits an FPGA nor elaborates in reasonable time."""
#: Attributes of a block-RAM memory whose ports never read an address in the cycle it is written
#: (by construction; each use says why): Yosys may then map it without the logic that emulates
#: Amaranth's read-old-data rule on a collision (a multiplexer after the block RAM's output).
NO_COLLISION_RAM = {"no_rw_check": 1}
#: Width of every performance counter (the core's and the MCACHE's; docs/spec.md 9.3).
COUNTER_WIDTH = 48
#: The core's performance counters, in port order (Verilog ports ``counters__<name>``).
COUNTERS = ("cycles", "vectors", "hits", "misses", "macs_done", "macs_skipped")


class ConfigError(ValueError):
    """An invalid configuration value. The message names the field and the allowed values."""


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for integers, b > 0 (the one home of this rounding; spec 9.4's c(L), tiles)."""
    return -(-a // b)


def _bits_for(n: int) -> int:
    """Bits of an unsigned counter that holds 0..n."""
    return max(1, int(n).bit_length())


def _signed_bits_for(magnitude: int) -> int:
    """Bits of a two's-complement value that holds -magnitude..magnitude."""
    return int(magnitude).bit_length() + 1


@dataclass(frozen=True)
class MercuryConfig:
    """Build-time configuration of the MERCURY core.

    Parameters
    ----------
    lanes : int
        P, vector elements accepted per cycle (1..64).
    max_len : int
        Longest vector (elements) the core accepts; sizes weight memories and accumulators.
    sig_bits : int
        S, signature bits (1..64).
    sets : int
        MCACHE sets, a power of two with ``log2(sets) < sig_bits`` (at least one tag bit).
    ways : int
        MCACHE ways per set (1..16).
    policy : str
        Replacement, ``"lru"`` or ``"fifo"``.
    pes : int
        M, processing elements = output channels computed in parallel (1..64).
    acc_width : int
        Accumulator width in bits; at least what ``max_len`` int8 x int8 products need, at most 64.
    max_vectors : int
        Depth of the hitmap/pointer memory = the flush block B of the spec: the MCACHE is flushed
        before every B-th vector of a layer (1..1048576).
    seed : int
        Projection seed, 0 <= seed < 2**64 (docs/spec.md, section 4).
    """

    lanes: int = 4
    max_len: int = 4608
    sig_bits: int = 16
    sets: int = 32
    ways: int = 4
    policy: str = "lru"
    pes: int = 8
    acc_width: int = 32
    max_vectors: int = 4096
    seed: int = 0x4D455243

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "str" or f.name == "policy":
                if not isinstance(v, str):
                    raise ConfigError(f"{f.name} must be a string, not {v!r}")
            elif isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"{f.name} must be an integer, not {v!r}")
        self._check_range("lanes", 1, 64)
        self._check_range("max_len", 1, 65535)
        self._check_range("sig_bits", 1, 64)
        if self.sets < 1 or self.sets & (self.sets - 1):
            raise ConfigError(f"sets must be a power of two (1, 2, 4, ...), not {self.sets}")
        if self.set_bits >= self.sig_bits:
            raise ConfigError(
                f"sets must be at most 2**(sig_bits-1) = {1 << (self.sig_bits - 1)} so that a tag "
                f"keeps at least one bit, not {self.sets}")
        self._check_range("ways", 1, 16)
        if self.entries > MAX_ENTRIES:
            raise ConfigError(
                f"sets x ways must be at most {MAX_ENTRIES} MCACHE entries, not {self.sets} x "
                f"{self.ways} = {self.entries}")
        if self.policy not in POLICIES:
            raise ConfigError(f"policy must be one of {', '.join(POLICIES)}, not {self.policy!r}")
        self._check_range("pes", 1, 64)
        need = self.acc_width_needed
        if not need <= self.acc_width <= 64:
            raise ConfigError(
                f"acc_width must be between {need} (what max_len={self.max_len} int8 products "
                f"need) and 64, not {self.acc_width}")
        self._check_range("max_vectors", 1, 1 << 20)
        if not 0 <= self.seed < (1 << 64):
            raise ConfigError(f"seed must be between 0 and 2**64-1, not {self.seed}")

    def _check_range(self, name: str, lo: int, hi: int):
        v = getattr(self, name)
        if not lo <= v <= hi:
            raise ConfigError(f"{name} must be between {lo} and {hi}, not {v}")

    # -- derived widths and depths (hardware) ---------------------------------------------------
    @property
    def elem_width(self) -> int:
        return ELEM_WIDTH

    @property
    def entries(self) -> int:
        """MCACHE entries E = sets * ways; also the depth of the result buffer."""
        return self.sets * self.ways

    @property
    def set_bits(self) -> int:
        return self.sets.bit_length() - 1

    @property
    def tag_bits(self) -> int:
        return self.sig_bits - self.set_bits

    @property
    def entry_bits(self) -> int:
        """Width of an entry index (at least 1)."""
        return max(1, (self.entries - 1).bit_length())

    @property
    def way_bits(self) -> int:
        return max(1, (self.ways - 1).bit_length())

    @property
    def max_beats(self) -> int:
        """Beats of the longest vector, ceil(max_len / lanes)."""
        return ceil_div(self.max_len, self.lanes)

    @property
    def sig_len_bits(self) -> int:
        """Width of a run-time signature length 0..S (``cmd.sig_len``, spec 13: ``bits(S)``)."""
        return self.sig_bits.bit_length()

    @property
    def len_bits(self) -> int:
        """Width of a run-time vector length 0..max_len."""
        return _bits_for(self.max_len)

    @property
    def count_bits(self) -> int:
        """Width of a run-time vector count 0..max_vectors."""
        return _bits_for(self.max_vectors)

    @property
    def proj_width(self) -> int:
        """Signed width of an exact projection: |sum| <= max_len * 128."""
        return _signed_bits_for(self.max_len * 128)

    @property
    def acc_width_needed(self) -> int:
        """Signed width of an exact dot product of max_len int8 x int8 products (each <= 2**14)."""
        return _signed_bits_for(self.max_len * (1 << 14))

    # -- derived run-time quantities (docs/spec.md 9.4) -------------------------------------------
    def beats(self, length: int) -> int:
        """c(L): beats (= cycles of a computed vector) of a vector of L elements, at least 1."""
        return max(1, ceil_div(length, self.lanes))

    def tiles(self, k: int) -> int:
        """Output-channel tiles of a layer with ``k`` output channels, ceil(K / M)."""
        return ceil_div(k, self.pes)

    def blocks(self, vectors: int) -> int:
        """Flush blocks of a layer of ``vectors`` vectors, ceil(V / B) (B = max_vectors)."""
        return ceil_div(vectors, self.max_vectors)

    # -- conversions ------------------------------------------------------------------------------
    def golden_kwargs(self) -> dict:
        """The algorithmic parameters, as the golden model's keyword arguments."""
        return dict(sig_bits=self.sig_bits, seed=self.seed, sets=self.sets, ways=self.ways,
                    policy=self.policy, block=self.max_vectors)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> MercuryConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown configuration field(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(known))}")
        return cls(**d)

    def replace(self, **changes) -> MercuryConfig:
        return dataclasses.replace(self, **changes)

    @property
    def name(self) -> str:
        """A short, filesystem-safe name for build folders and reports."""
        return (f"P{self.lanes}_L{self.max_len}_S{self.sig_bits}"
                f"_{self.sets}x{self.ways}{self.policy}_M{self.pes}_A{self.acc_width}"
                f"_V{self.max_vectors}_seed{self.seed:x}")

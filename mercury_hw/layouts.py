"""Payload layouts of every stream in the design (docs/spec.md, section 9), and bit packers.

One module used by the hardware, the testbenches and the replay harness, so a field's position is
defined exactly once. Every layout is a function of a :class:`~mercury_hw.config.MercuryConfig`.
Amaranth places the first struct field at the least significant bits and array element ``i`` at
bits ``[i*w, (i+1)*w)``; :func:`pack` and :func:`unpack` follow the layout objects themselves, so
they cannot drift from the hardware.
"""

from __future__ import annotations

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data

from .config import MercuryConfig

__all__ = ["vector_beat", "siggen_beat", "signature", "cache_response", "weight_word",
           "weight_beat", "command", "result", "result_row", "array_beat", "array_token",
           "pack", "unpack"]


def vector_beat(cfg: MercuryConfig) -> data.ArrayLayout:
    """P int8 elements of one vector beat (the core's ``vectors`` stream)."""
    return data.ArrayLayout(signed(cfg.elem_width), cfg.lanes)


def siggen_beat(cfg: MercuryConfig) -> data.StructLayout:
    """SignatureGenerator input: a vector beat, the flush bit carried to its signature, and
    ``last``, set on the vector's final beat."""
    return data.StructLayout({"data": vector_beat(cfg), "flush": 1, "last": 1})


def signature(cfg: MercuryConfig) -> data.StructLayout:
    """SignatureGenerator output = MCache request: S-bit signature, flush-before-lookup bit."""
    return data.StructLayout({"sig": unsigned(cfg.sig_bits), "flush": 1})


def cache_response(cfg: MercuryConfig) -> data.StructLayout:
    """MCache response: hit, and the entry hit (hit=1) or allocated (hit=0)."""
    return data.StructLayout({"hit": 1, "entry": unsigned(cfg.entry_bits)})


def weight_word(cfg: MercuryConfig) -> data.ArrayLayout:
    """The M x P weights of one beat: ``[m][p]`` is PE m's weight for lane p (a weight-memory
    word of the PE array)."""
    return data.ArrayLayout(vector_beat(cfg), cfg.pes)


def weight_beat(cfg: MercuryConfig) -> data.StructLayout:
    """One beat of a weight tile: ``data`` is a :func:`weight_word`; ``last`` ends the tile."""
    return data.StructLayout({"data": weight_word(cfg), "last": 1})


def command(cfg: MercuryConfig) -> data.StructLayout:
    """One pass of the core (docs/spec.md, sections 9.3 and 13).

    ``sig_len``: the signature length s of a signature pass (1..S; 0 means S), ignored by
    baseline and replay passes.
    """
    return data.StructLayout({
        "length": unsigned(cfg.len_bits),
        "count": unsigned(cfg.count_bits),
        "reuse": 1,
        "replay": 1,
        "sig_len": unsigned(cfg.sig_len_bits),
    })


def result_row(cfg: MercuryConfig) -> data.ArrayLayout:
    """The M accumulators of one vector (a computed-FIFO entry, a result-buffer word)."""
    return data.ArrayLayout(signed(cfg.acc_width), cfg.pes)


def result(cfg: MercuryConfig) -> data.StructLayout:
    """One vector's results for the current tile, its hit bit and its MCACHE entry."""
    return data.StructLayout({
        "data": result_row(cfg),
        "hit": 1,
        "entry": unsigned(cfg.entry_bits),
    })


def array_beat(cfg: MercuryConfig) -> data.StructLayout:
    """One vector beat for the PE array, annotated by the core's input sequencer.

    ``mask[p]``: lane p is inside the vector. ``last``: the vector's last beat. ``release``: the
    last beat of the pass; the pass's weight bank is freed after it. ``compute = 0``: a beat that
    only releases the bank (a pass that ends without a data beat), its data is ignored.
    """
    return data.StructLayout({
        "data": vector_beat(cfg),
        "mask": cfg.lanes,
        "last": 1,
        "release": 1,
        "compute": 1,
    })


def array_token(cfg: MercuryConfig) -> data.StructLayout:
    """What the PE array's output sequencer does for one vector, in result order.

    ``take``: consume the next computed result (in computation order). ``store``: write it to
    result-buffer entry ``entry``. ``hit``: emit result-buffer entry ``entry`` (the taken result,
    if any, is dropped: speculative work); else emit the taken result. ``hit`` and ``entry`` are
    copied to the result beat. The fields ``hit`` and ``entry`` are those of
    :func:`cache_response` (a signature pass's token is its MCACHE response).
    """
    return data.StructLayout({
        "hit": 1,
        "entry": unsigned(cfg.entry_bits),
        "take": 1,
        "store": 1,
    })


def _width(shape) -> int:
    return Shape.cast(shape).width


def pack(layout, value) -> int:
    """Pack a Python value (int, list for arrays, dict for structs) into an unsigned integer."""
    if isinstance(layout, data.ArrayLayout):
        w = _width(layout.elem_shape)
        if len(value) != layout.length:
            raise ValueError(f"array needs {layout.length} elements, got {len(value)}")
        return sum(pack(layout.elem_shape, v) << (i * w) for i, v in enumerate(value))
    if isinstance(layout, data.Layout):
        out = 0
        names = {name for name, _ in layout}
        extra = set(value) - names
        if extra:
            raise ValueError(f"unknown fields {sorted(extra)}")
        for name, field in layout:
            out |= pack(field.shape, value.get(name, 0)) << field.offset
        return out
    shape = Shape.cast(layout)
    v = int(value)
    if shape.signed:
        lo, hi = -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    else:
        lo, hi = 0, (1 << shape.width) - 1
    if not lo <= v <= hi:
        raise ValueError(f"{v} does not fit {shape}")
    return v & ((1 << shape.width) - 1)


def unpack(layout, bits: int):
    """Inverse of :func:`pack`: an unsigned integer to int / list / dict."""
    if isinstance(layout, data.ArrayLayout):
        w = _width(layout.elem_shape)
        return [unpack(layout.elem_shape, (bits >> (i * w)) & ((1 << w) - 1))
                for i in range(layout.length)]
    if isinstance(layout, data.Layout):
        return {name: unpack(field.shape, (bits >> field.offset) & ((1 << field.width) - 1))
                for name, field in layout}
    shape = Shape.cast(layout)
    bits &= (1 << shape.width) - 1
    if shape.signed and bits >> (shape.width - 1):
        bits -= 1 << shape.width
    return bits

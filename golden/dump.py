"""The layer dump for RTL replay: real layers' int8 vectors, weights and golden results.

For each selected Conv2d (construction order, NNN from 001), :func:`dump_layers` runs the
model's *first* forward call (the first ``batch`` images), takes the conv's input, quantizes it
and the conv weights (docs/spec.md, section 2), forms the vectors (section 3), and runs the golden
model (sections 4-7) with the given parameters. Files (section 10; the byte layout is in
docs/formats.md): ``NNN.json``, ``NNN.vec.i8``, ``NNN.wgt.i8``, ``NNN.acc.i64``,
``NNN.base.i64``, ``NNN.entry.i32``, ``NNN.sig.u64``, ``hitmap-NNN.csv``, plus ``manifest.json``.
``limit`` keeps the first N vectors of each layer (sequential semantics: the hitmap of a prefix
is the prefix of the hitmap). ``mercury-hw dump-vectors`` and ``mercury-hw sim`` call it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from golden import hw
from golden.datasets import is_digits
from golden.errors import UserError
from golden.hitmap_csv import HitmapRow, atomic_write_bytes, format_row
from golden.network import (
    FORMATIONS,
    build,
    capture_inputs,
    check_positive,
    conv_params,
    load_images,
    nnn,
    precheck,
    select_layers,
    versions,
)
from golden.outdir import MANIFEST, TOOL_KEY, check_replaceable, output_dir
from golden.reuse_conv import pass_trace

FORMAT_VERSION = 1
#: dtype of each array file of a layer (docs/formats.md), little-endian.
DTYPES = {"vectors": "<i1", "weights": "<i1", "acc": "<i8", "base": "<i8", "entry": "<i4",
          "signatures": "<u8"}


def _layer_files(tag: str) -> dict:
    return {"json": f"{tag}.json", "vectors": f"{tag}.vec.i8", "weights": f"{tag}.wgt.i8",
            "acc": f"{tag}.acc.i64", "base": f"{tag}.base.i64", "entry": f"{tag}.entry.i32",
            "signatures": f"{tag}.sig.u64", "hitmap": f"hitmap-{tag}.csv"}


def golden_layer(x: torch.Tensor, weight: torch.Tensor, conv: dict, *, formation: str,
                 golden_kwargs: dict, hardware: dict, reuse: bool = True,
                 sig_len: int | None = None, limit: int | None = None) -> dict:
    """Quantize one layer call, form its vectors and run the golden model; arrays and metadata.

    Parameters
    ----------
    x : float tensor (N, C, H, W), the conv's input.
    weight : float tensor (K, C, R, Sk), the conv's weight.
    conv : dict of kernel_size, stride, padding, dilation (tuples).
    formation : "window" or "row".
    golden_kwargs : dict
        sig_bits, seed, sets, ways, policy, block (``MercuryConfig.golden_kwargs()``).
    hardware : dict
        The hardware configuration as plain values (``MercuryConfig.to_dict()``): ``max_len``
        bounds L, ``lanes`` and ``pes`` give spec 9.4's cycle model; recorded whole.
    reuse, sig_len : the layer's settings (spec 13): reuse off gives all misses (entry -1);
        ``sig_len`` s (None: S) is the signature length of the MCACHE lookups
        (``golden.reuse_conv.pass_trace``). The signature file holds the full S-bit signatures.
    """
    n, c, h, w = (int(s) for s in x.shape)
    k = int(weight.shape[0])
    xq, sx = hw.quantize(x)
    wq, sw = hw.quantize(weight)
    oh, ow = hw.conv_out_size(h, w, **conv)
    if formation == "window":
        vecs, wm = hw.window_vectors(xq, **conv), hw.window_weights(wq)
    else:
        vecs, wm = hw.row_vectors(xq), hw.row_weights(wq, w)
    total = int(vecs.shape[0])
    if limit is not None:
        vecs = vecs[:limit]
    v, length = (int(s) for s in vecs.shape)
    max_len, block = hardware["max_len"], golden_kwargs["block"]
    if length > max_len:
        raise UserError(f"vectors of L = {length} are longer than --max-len {max_len}; allowed: "
                        f"--max-len >= {length} (or other --layers)")
    sigs = hw.signatures(vecs, golden_kwargs["sig_bits"], golden_kwargs["seed"])
    cache = {k: v for k, v in golden_kwargs.items() if k != "seed"}
    trace = pass_trace(sigs, **cache, sig_len=sig_len, enabled=reuse)
    base = hw.exact_matmul(vecs, wm)
    acc = base[trace.owner]                 # spec 7: a hit takes its owner's accumulators
    hits = trace.hits
    hit_bits = trace.hit.numpy().astype(np.uint8)
    meta = {
        "formation": formation,
        "N": n,
        "C": c,
        "H": h,
        "W": w,
        "OH": oh,
        "OW": ow,
        "kernel_size": list(conv["kernel_size"]),
        "stride": list(conv["stride"]),
        "padding": list(conv["padding"]),
        "dilation": list(conv["dilation"]),
        "V": v,
        "V_total": total,
        "limit": limit,
        "L": length,
        "K": k,
        "S": golden_kwargs["sig_bits"],
        "scales": {"x": sx, "w": sw},
        "reuse": reuse,
        "sig_len": golden_kwargs["sig_bits"] if sig_len is None else sig_len,
        "config": dict(hardware),
        "golden": dict(golden_kwargs),
        "hits": hits,
        "misses": v - hits,
        "macs_done": (v - hits) * length * k,
        "macs_skipped": hits * length * k,
        "blocks": -(-v // block),
        "cycles": hw.layer_ideal_cycles(
            trace.hit, length, k, hardware["lanes"], hardware["pes"], block
        ),
        "acc_abs_max": int(base.abs().max()) if base.numel() else 0,
    }
    return {"meta": meta, "vectors": vecs, "weights": wm, "acc": acc, "base": base,
            "entry": trace.entry, "sigs": sigs, "hit_bits": hit_bits}


def _write_layer(tmp: Path, tag: str, name: str, g: dict) -> dict:
    files = _layer_files(tag)
    meta = {TOOL_KEY: "dump-vectors", "format": FORMAT_VERSION, "layer": tag, "name": name} | g[
        "meta"
    ]
    meta["files"] = {key: f for key, f in files.items() if key != "json"}
    meta["dtypes"] = {
        "vectors": "int8",
        "weights": "int8",
        "acc": "int64",
        "base": "int64",
        "entry": "int32",
        "signatures": "uint64",
    }
    arrays = {
        "vectors": g["vectors"].numpy().astype("<i1"),
        "weights": g["weights"].numpy().astype("<i1"),
        "acc": g["acc"].numpy().astype("<i8"),
        "base": g["base"].numpy().astype("<i8"),
        "entry": g["entry"].numpy().astype("<i4"),
        "signatures": g["sigs"].numpy().view(np.uint64).astype("<u8"),
    }
    for key, arr in arrays.items():
        atomic_write_bytes(tmp / files[key], np.ascontiguousarray(arr).tobytes())
    m = g["meta"]
    row = HitmapRow(
        m["N"], m["C"], m["H"], m["W"], m["V"], m["S"], m["hits"], m["misses"], g["hit_bits"]
    )
    atomic_write_bytes(tmp / files["hitmap"], format_row(row))
    atomic_write_bytes(tmp / files["json"], (json.dumps(meta, indent=1) + "\n").encode())
    return meta


def dump_layers(model_name: str = "resnet18", *, golden_kwargs: dict, hardware: dict, out_dir,
                formation: str = "window", layers: str | None = None, limit: int | None = None,
                reuse: bool = True, images: Path | None = None, batch: int = 1,
                weights: Path | None = None, model_seed: int = 0,
                settings: list | None = None, reuse_policy=None) -> list[dict]:
    """Dump the first forward call of the selected layers into ``out_dir`` (replaced atomically).

    Parameters
    ----------
    model_name : one of golden.models.MODEL_NAMES or DIGITS_MODEL_NAMES.
    golden_kwargs, hardware : the parameters, as :func:`golden_layer` takes them.
    formation : "window" or "row".
    layers : ``--layers`` syntax ("1,5", "2-4", "layer1.0.conv1"); None = every conv.
    limit : keep the first ``limit`` vectors of each layer.
    reuse : False gives all-miss golden results (entry -1).
    settings : per-conv settings (spec 13), one per conv of the model in construction order,
        each with ``reuse`` and ``sig_len`` (None: S) (``golden.reuse_net.LayerSetting``, as
        ``golden.policy.Policy.settings`` gives them); None: ``reuse`` and s = S for every conv.
    reuse_policy : policy file path or ``golden.policy.Policy`` (spec 14), optional: the
        settings read from it (``golden.policy.layer_settings``; recorded in the manifest); not
        together with ``settings`` or ``reuse=False``.
    images : directory of images; None = the bundled photos (digits models: the digits test
        split; :func:`golden.network.load_images`). ``batch`` images are used.

    Returns
    -------
    list of dict
        The contents of each ``NNN.json``, in layer order.
    """
    if formation not in FORMATIONS:
        raise UserError(f"--vectors must be one of {', '.join(FORMATIONS)}, not {formation!r}")
    check_positive("--batch", batch)
    if limit is not None:
        check_positive("--limit", limit)
    out_dir = Path(out_dir)
    check_replaceable(out_dir)
    if reuse_policy is not None:
        settings = _policy_settings(reuse_policy, model_name, golden_kwargs, settings, reuse)
    precheck(model_name, layers, batch=batch, count=batch, formation=formation,
             max_len=hardware["max_len"])
    with output_dir(out_dir) as tmp:
        model, convs = build(model_name, weights, model_seed)
        selected = select_layers([n for n, _ in convs], layers)
        if settings is not None and len(settings) != len(convs):
            raise UserError(f"{len(settings)} per-layer settings for a model of {len(convs)} "
                            f"convs; allowed: one per conv")
        params = {i: conv_params(convs[i][1], checked=formation == "window") for i in selected}
        x, names = load_images(images, batch, model_name)
        captured = capture_inputs(model, convs, selected, x)
        metas = []
        for i in selected:
            name, conv = convs[i]
            g = golden_layer(
                captured[i],
                conv.weight.detach(),
                params[i],
                formation=formation,
                golden_kwargs=golden_kwargs,
                hardware=hardware,
                reuse=reuse if settings is None else settings[i].reuse,
                sig_len=None if settings is None else settings[i].sig_len,
                limit=limit,
            )
            metas.append(_write_layer(tmp, nnn(i), name, g))
        manifest = _manifest(metas, model_name=model_name, weights=weights,
                             model_seed=model_seed, names=names, batch=batch,
                             formation=formation, reuse=reuse, limit=limit, hardware=hardware,
                             reuse_policy=reuse_policy)
        atomic_write_bytes(tmp / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return metas


def _policy_settings(reuse_policy, model_name: str, golden_kwargs: dict, settings,
                     reuse: bool) -> list:
    """The per-conv settings of ``reuse_policy`` (checked against the model and S)."""
    from golden.policy import model_settings

    if settings is not None:
        raise UserError("a reuse policy and explicit per-layer settings are exclusive")
    if not reuse:
        raise UserError("--reuse-policy and --no-reuse are exclusive: the policy says per layer "
                        "whether reuse is on")
    return model_settings(reuse_policy, model_name, golden_kwargs["sig_bits"])


def _manifest(metas: list[dict], *, model_name, weights, model_seed, names, batch, formation,
              reuse, limit, hardware, reuse_policy=None) -> dict:
    """``manifest.json`` of a dump (docs/formats.md)."""
    return {
        TOOL_KEY: "dump-vectors",
        "format": FORMAT_VERSION,
        "model": model_name,
        "weights": str(weights) if weights is not None else None,
        "model_seed": None if weights is not None or is_digits(model_name) else model_seed,
        "images": names,
        "batch": batch,
        "formation": formation,
        "reuse": reuse,
        "reuse_policy": None if reuse_policy is None else str(reuse_policy),
        "limit": limit,
        "config": dict(hardware),
        "versions": versions(),
        "layers": {
            m["layer"]: {
                "name": m["name"],
                "json": f"{m['layer']}.json",
                "V": m["V"],
                "L": m["L"],
                "K": m["K"],
                "hits": m["hits"],
                "reuse": m["reuse"],
                "sig_len": m["sig_len"],
            }
            for m in metas
        },
    }


# ------------------------------------------------------------------------------------------------
# Reading a dump back (``mercury-hw sim``; anyone replaying a dump)

def _shapes(meta: dict) -> dict:
    v, length, k = meta["V"], meta["L"], meta["K"]
    return {"vectors": (v, length), "weights": (k, length), "acc": (v, k), "base": (v, k),
            "entry": (v,), "signatures": (v,)}


def read_layer_meta(folder, tag: str) -> dict:
    """``NNN.json`` of a dumped layer, checked: the keys a reader uses (``V``, ``L``, ``K``:
    integers >= 0, ``files``: plain file names in the folder). Raises ``UserError`` (one line)."""
    path = Path(folder) / f"{tag}.json"
    try:
        meta = json.loads(path.read_bytes())
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({str(exc).splitlines()[0]}); expected the "
                        f"layer file dump-vectors writes") from None
    check_layer_meta(path, meta)
    return meta


def check_layer_meta(where, meta) -> None:
    """Refuse a layer description a reader cannot use (see :func:`read_layer_meta`)."""
    if not isinstance(meta, dict):
        raise UserError(f"{where}: expected a JSON object, not {type(meta).__name__}")
    for key in ("V", "L", "K"):
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 40:
            raise UserError(f"{where}: {key} is {value!r}; expected an integer >= 0")
    files = meta.get("files")
    needed = (*DTYPES, "hitmap")
    if not isinstance(files, dict) or not all(isinstance(files.get(k), str) for k in needed):
        raise UserError(f"{where}: 'files' must name the files {', '.join(needed)}")
    for key in needed:
        name = files[key]
        if not name or Path(name).name != name or name in (".", ".."):
            raise UserError(f"{where}: files.{key} is {name!r}; expected a file name in the folder")


def load_layer_arrays(folder, meta: dict) -> dict:
    """The arrays of one dumped layer (spec section 10) as numpy arrays, sizes checked against
    ``meta`` (:func:`read_layer_meta`); the hitmap (:class:`~golden.hitmap_csv.HitmapFile`, one
    call of V bits) and its bits as ``hit``. Raises ``UserError`` (one line) on any mismatch."""
    from golden.hitmap_csv import read_hitmap_csv

    folder = Path(folder)
    check_layer_meta(folder / f"{meta.get('layer', '?')}.json", meta)
    out = {}
    for key, shape in _shapes(meta).items():
        path = folder / meta["files"][key]
        itemsize = np.dtype(DTYPES[key]).itemsize
        expected = int(np.prod(shape))
        try:
            size = path.stat().st_size
            if size != expected * itemsize:
                raise UserError(f"{path}: {size} bytes, expected {expected * itemsize} "
                                f"({expected} {DTYPES[key]} values for shape {shape})")
            out[key] = np.fromfile(path, dtype=DTYPES[key]).reshape(shape)
        except OSError as exc:
            raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    out["entry"] = out["entry"].astype(np.int64)
    hm = read_hitmap_csv(folder / meta["files"]["hitmap"])
    if hm.calls != 1 or hm.rows[0].vectors != meta["V"]:
        raise UserError(f"{hm.path}: {hm.calls} rows of {hm.rows[0].vectors} bits; expected one "
                        f"row of V = {meta['V']} bits (the layer's first call)")
    out["hitmap"] = hm
    out["hit"] = hm.rows[0].bits.astype(np.int64)
    return out

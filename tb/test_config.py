"""``MercuryConfig``: every validation message (exactly), every field's bounds, the derived widths,
conversions, and the ``--field`` command-line flags through ``mercury-hw verilog``.
"""

import argparse
import dataclasses
import json

import pytest

from mercury_cli.args import add_config_arguments, config_from_args
from mercury_cli.main import main
from mercury_hw.config import ConfigError, MercuryConfig

from configs import CONFIGS

FIELDS = [f.name for f in dataclasses.fields(MercuryConfig)]


def error(**kw) -> str:
    with pytest.raises(ConfigError) as info:
        MercuryConfig(**kw)
    return str(info.value)


# -- messages, asserted exactly -------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, message",
    [
        ({"sets": 48}, "sets must be a power of two (1, 2, 4, ...), not 48"),
        ({"sets": 0}, "sets must be a power of two (1, 2, 4, ...), not 0"),
        ({"sets": -4}, "sets must be a power of two (1, 2, 4, ...), not -4"),
        (
            {"sig_bits": 5, "sets": 32},
            "sets must be at most 2**(sig_bits-1) = 16 so that a tag keeps at least one bit, not "
            "32",
        ),
        (
            {"sig_bits": 1, "sets": 2},
            "sets must be at most 2**(sig_bits-1) = 1 so that a tag keeps at least one bit, not 2",
        ),
        ({"policy": "plru"}, "policy must be one of lru, fifo, not 'plru'"),
        ({"policy": "LRU"}, "policy must be one of lru, fifo, not 'LRU'"),
        ({"policy": 1}, "policy must be a string, not 1"),
        ({"lanes": "4"}, "lanes must be an integer, not '4'"),
        ({"ways": 2.0}, "ways must be an integer, not 2.0"),
        ({"pes": True}, "pes must be an integer, not True"),
        ({"seed": None}, "seed must be an integer, not None"),
        (
            {"acc_width": 27},
            "acc_width must be between 28 (what max_len=4608 int8 products need) and 64, not 27",
        ),
        (
            {"acc_width": 65},
            "acc_width must be between 28 (what max_len=4608 int8 products need) and 64, not 65",
        ),
        (
            {"max_len": 1, "acc_width": 15},
            "acc_width must be between 16 (what max_len=1 int8 products need) and 64, not 15",
        ),
        ({"seed": -1}, "seed must be between 0 and 2**64-1, not -1"),
        ({"seed": 1 << 64}, f"seed must be between 0 and 2**64-1, not {1 << 64}"),
    ],
)
def test_message(kw, message):
    assert error(**kw) == message


# -- every range-checked field: both bounds pass, one past each bound fails ----------------------
RANGES = {
    "lanes": (1, 64, {}),
    "max_len": (1, 65535, {}),
    "sig_bits": (1, 64, {"sets": 1}),
    "ways": (1, 16, {}),
    "pes": (1, 64, {}),
    "max_vectors": (1, 1 << 20, {}),
}


@pytest.mark.parametrize("name", list(RANGES))
def test_bounds(name):
    lo, hi, extra = RANGES[name]
    assert getattr(MercuryConfig(**extra, **{name: lo}), name) == lo
    assert getattr(MercuryConfig(**extra, **{name: hi}), name) == hi
    for bad in (lo - 1, hi + 1):
        assert error(**extra, **{name: bad}) == f"{name} must be between {lo} and {hi}, not {bad}"


def test_every_field_is_validated():
    """Each field has a bound test above or an exact-message case."""
    covered = set(RANGES) | {"sets", "policy", "acc_width", "seed"}
    assert covered == set(FIELDS)


def test_other_bounds():
    assert MercuryConfig(sets=1).sets == 1
    assert MercuryConfig(sig_bits=13, sets=1 << 12, ways=1).tag_bits == 1  # largest legal sets
    assert MercuryConfig(sig_bits=64, sets=1 << 12, ways=1).set_bits == 12
    assert MercuryConfig(sets=256, ways=16).entries == 4096  # largest MCACHE
    assert (
        MercuryConfig(acc_width=28).acc_width == 28 and MercuryConfig(acc_width=64).acc_width == 64
    )
    assert MercuryConfig(max_len=65535).acc_width_needed == 31  # 65535 * 2**14 < 2**30
    assert (
        MercuryConfig(seed=0).seed == 0 and MercuryConfig(seed=(1 << 64) - 1).seed == (1 << 64) - 1
    )
    for policy in ("lru", "fifo"):
        assert MercuryConfig(policy=policy).policy == policy


# -- derived widths -------------------------------------------------------------------------------
def test_derived_default():
    c = MercuryConfig()
    assert (c.elem_width, c.entries, c.set_bits, c.tag_bits, c.entry_bits, c.way_bits) == (
        8,
        128,
        5,
        11,
        7,
        2,
    )
    assert (c.max_beats, c.len_bits, c.count_bits) == (1152, 13, 13)
    assert c.proj_width == 21  # |proj| <= 4608 * 128 = 589824 < 2**20
    assert c.acc_width_needed == 28  # |dot| <= 4608 * 2**14 = 75497472 < 2**27


@pytest.mark.parametrize(
    "name, expected",
    [
        # entries, set_bits, tag_bits, entry_bits, way_bits, max_beats, len_bits, count_bits, proj,
        # acc_needed
        ("direct", (16, 4, 4, 4, 1, 64, 7, 7, 15, 22)),
        ("fullassoc", (8, 0, 64, 3, 3, 34, 7, 8, 15, 22)),
        ("wide", (16, 3, 9, 4, 1, 32, 9, 9, 17, 24)),
    ],
)
def test_derived_test_configs(name, expected):
    c = CONFIGS[name]
    assert (c.entries, c.set_bits, c.tag_bits, c.entry_bits, c.way_bits, c.max_beats, c.len_bits,
            c.count_bits, c.proj_width, c.acc_width_needed) == expected


def test_derived_edges():
    one = MercuryConfig(sets=1, ways=1, sig_bits=1, lanes=1, max_len=1, acc_width=16, max_vectors=1)
    assert (one.entries, one.set_bits, one.tag_bits, one.entry_bits, one.way_bits) == (
        1,
        0,
        1,
        1,
        1,
    )
    assert (one.max_beats, one.len_bits, one.count_bits, one.proj_width) == (1, 1, 1, 9)
    assert MercuryConfig(ways=16, sets=1).way_bits == 4
    assert MercuryConfig(ways=5, sets=4).entry_bits == 5  # 20 entries
    assert MercuryConfig(lanes=64, max_len=65535).max_beats == 1024  # ceil(65535 / 64)
    assert MercuryConfig(max_len=65535).len_bits == 16
    assert MercuryConfig(max_vectors=1 << 20).count_bits == 21


# -- conversions ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CONFIGS))
def test_round_trips(name):
    c = CONFIGS[name]
    assert MercuryConfig.from_dict(c.to_dict()) == c
    assert MercuryConfig.from_dict(json.loads(c.to_json())) == c
    assert list(json.loads(c.to_json())) == sorted(FIELDS)


def test_from_dict_unknown_field():
    with pytest.raises(ConfigError) as info:
        MercuryConfig.from_dict({"ways": 2, "cache_sets": 4, "bogus": 1})
    assert str(info.value) == (
        "unknown configuration field(s) bogus, cache_sets; allowed: acc_width, "
        "lanes, max_len, max_vectors, pes, policy, seed, sets, sig_bits, ways"
    )


def test_from_dict_validates():
    with pytest.raises(ConfigError, match=r"^ways must be between 1 and 16, not 17$"):
        MercuryConfig.from_dict({"ways": 17})


def test_frozen_and_replace():
    c = MercuryConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.ways = 2
    assert c.replace(ways=2).ways == 2 and c.ways == 4
    with pytest.raises(ConfigError, match=r"^ways must be between 1 and 16, not 0$"):
        c.replace(ways=0)


def test_golden_kwargs_and_name():
    c = CONFIGS["direct"]
    assert c.golden_kwargs() == dict(sig_bits=8, seed=7, sets=16, ways=1, policy="fifo", block=64)
    assert MercuryConfig().name == "P4_L4608_S16_32x4lru_M8_A32_V4096_seed4d455243"
    assert len({c.name for c in CONFIGS.values()}) == len(CONFIGS)


# -- command-line flags ---------------------------------------------------------------------------
def parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_flags_parse():
    assert parse([]) == MercuryConfig()
    assert parse(["--sig-bits", "32", "--ways", "8"]) == MercuryConfig(sig_bits=32, ways=8)
    assert parse(["--seed", "0xff", "--policy", "fifo"]) == MercuryConfig(seed=255, policy="fifo")
    flags = {"--" + f.replace("_", "-") for f in FIELDS}
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    assert flags <= {s for a in parser._actions for s in a.option_strings}


def test_cli_good_flags_write(tmp_path, capsys):
    assert main(["verilog", "--out", str(tmp_path), "--block", "siggen", "--sig-bits", "32",
                 "--ways", "8"]) == 0
    text = (tmp_path / "mercury_siggen.v").read_text()
    assert "--sig-bits 32 --ways 8" in text
    assert MercuryConfig(sig_bits=32, ways=8).to_json() in text


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sets", "48"], "sets must be a power of two (1, 2, 4, ...), not 48"),
        (["--ways", "0"], "ways must be between 1 and 16, not 0"),
        (["--sig-bits", "65"], "sig_bits must be between 1 and 64, not 65"),
        (
            ["--sig-bits", "4", "--sets", "16"],
            "sets must be at most 2**(sig_bits-1) = 8 so that a tag keeps at least one bit, not 16",
        ),
        (["--policy", "plru"], "policy must be one of lru, fifo, not 'plru'"),
        (
            ["--acc-width", "8"],
            "acc_width must be between 28 (what max_len=4608 int8 products need) and 64, not 8",
        ),
        (
            ["--sig-bits", "64", "--sets", str(1 << 40), "--ways", "16"],
            f"sets x ways must be at most 4096 MCACHE entries, not {1 << 40} x 16 = {1 << 44}",
        ),
        (
            ["--sets", "512", "--ways", "16"],
            "sets x ways must be at most 4096 MCACHE entries, not 512 x 16 = 8192",
        ),
        (["--max-vectors", "0x100001"], "max_vectors must be between 1 and 1048576, not 1048577"),
    ],
    ids=lambda v: "_".join(v).lstrip("-") if isinstance(v, list) else "",
)
def test_cli_bad_values_exit_2(tmp_path, capsys, flags, message):
    out = tmp_path / "v"
    assert main(["verilog", "--out", str(out)] + flags) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {message}\n"  # one line, no traceback
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("value", ["-1", str(1 << 64)])
def test_cli_seed_out_of_range(tmp_path, capsys, value):
    """Refused by the parser (mercury_cli.args.seed_arg), before the command runs."""
    out = tmp_path / "v"
    with pytest.raises(SystemExit) as info:
        main(["verilog", "--out", str(out), "--seed", value])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: mercury-hw verilog: argument --seed: seed must be between 0 and 2**64-1, not "
        f"{value} (see mercury-hw verilog --help)\n")
    assert not out.exists()


@pytest.mark.parametrize("flag", ["--ways", "--seed", "--lanes"])
def test_cli_non_integer_is_rejected(tmp_path, capsys, flag):
    out = tmp_path / "v"
    with pytest.raises(SystemExit) as info:
        main(["verilog", "--out", str(out), flag, "many"])
    assert info.value.code == 2
    name = flag[2:].replace("-", "_")
    err = capsys.readouterr().err  # exactly one line, no usage block, no traceback
    assert err == (
        f"error: mercury-hw verilog: argument {flag}: {name} must be an integer, not 'many' "
        "(see mercury-hw verilog --help)\n"
    )
    assert not out.exists()

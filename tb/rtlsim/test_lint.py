"""``mercury-hw lint``: every block's generated Verilog passes ``verilator --lint-only -Wall``
with only the documented waivers, at the default configuration and at ``direct`` (1 way, P = 1),
and the waivers cannot hide a design mistake (an unused input port, a real truncation, an error).
"""

import pytest

from mercury_hw import gen, lint

from configs import CONFIGS
from rtlsim.runner import REPO

LINT_CONFIGS = ("default", "direct")


@pytest.mark.parametrize("cfg_name", LINT_CONFIGS)
@pytest.mark.parametrize("block", list(gen.BLOCKS))
def test_block_lints_clean(block, cfg_name):
    cfg = CONFIGS[cfg_name]
    result = lint.lint_block(block, cfg, REPO / "build" / "lint" / cfg.name)
    unwaived = "\n".join(w.text for w in result.unwaived)
    assert result.returncode == 0, f"verilator failed on {result.path}:\n{unwaived}"
    assert result.ok, f"{result.summary()}\n{unwaived}"
    assert result.top == f"mercury_{block}"


def _lint_text(tmp_path, name: str, text: str) -> lint.LintResult:
    path = tmp_path / f"{name}.v"
    path.write_text(text)
    return lint.lint_file(path)


def test_unused_input_port_is_not_waived(tmp_path):
    result = _lint_text(tmp_path, "mercury_fake", (
        "module mercury_fake(a, b, y);\n"
        "  input a;\n  wire a;\n  input [3:0] b;\n  wire [3:0] b;\n"
        "  output y;\n  wire y;\n"
        "  wire copy_a;\n  assign copy_a = a;\n"  # an unread named alias: waived
        "  assign y = a;\nendmodule\n"))
    codes = [(w.code, w.signal) for w in result.unwaived]
    assert codes == [("UNUSEDSIGNAL", "b")], result.summary()
    assert [w.signal for w in result.warnings if w.waiver] == ["copy_a"]
    assert not result.ok


def test_real_truncation_is_not_waived(tmp_path):
    result = _lint_text(tmp_path, "mercury_trunc", (
        "module mercury_trunc(a, y);\n  input [7:0] a;\n  wire [7:0] a;\n"
        "  output [3:0] y;\n  wire [3:0] y;\n  assign y = a + 8'h01;\nendmodule\n"))
    assert [w.code for w in result.unwaived] == ["WIDTHTRUNC"], result.summary()


def test_verilator_error_fails(tmp_path):
    result = _lint_text(
        tmp_path, "mercury_broken", "module mercury_broken(a);\n input a\nendmodule\n"
    )
    assert result.returncode != 0 and not result.ok
    assert any(w.code.startswith("ERROR") for w in result.unwaived)


def test_every_waiver_has_a_reason():
    assert lint.WAIVERS
    for w in lint.WAIVERS:
        assert w.code.isupper() and len(w.reason) > 40, w


def test_cli_reports_missing_files(tmp_path, capsys):
    from mercury_cli.main import main

    assert main(["lint", "--dir", str(tmp_path), "--block", "siggen"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "mercury_siggen.v missing" in err and err.count("\n") == 1

"""The README's decoder-LLM example runs as written from a checkout (its prompt file is shipped),
and `accelsim simulate` of its trace prints the prefill figures and the per-decode-token figures,
with the per-token saving the API (`decode_per_token`) gives.

Needs the optional ``transformers`` (accelsim[llm]); skipped cleanly without it."""
from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from accelsim.cli import main  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
REPO = Path(__file__).resolve().parents[1]


def _readme_llm_commands() -> list[list[str]]:
    """The `accelsim` commands of the README's code block that captures a decoder."""
    readme = (REPO / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
                 if "--prompt-file" in b)
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if argv[:1] == ["accelsim"]:
            commands.append(argv[1:])
    return commands


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """Run the README's capture and simulate lines in a folder that looks like a checkout."""
    folder = tmp_path_factory.mktemp("llm_readme")
    for name in ("traces", "hw_configs"):
        (folder / name).symlink_to(REPO / name, target_is_directory=True)
    capture, simulate = _readme_llm_commands()
    assert capture[:2] == ["trace", "capture"] and simulate[0] == "simulate"
    mp = pytest.MonkeyPatch()
    mp.chdir(folder)
    try:
        assert main(capture) == 0
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(simulate) == 0
        with contextlib.redirect_stdout(io.StringIO()) as js:
            assert main(simulate + ["--json"]) == 0
    finally:
        mp.undo()
    trace = folder / capture[capture.index("-o") + 1]
    hw = folder / simulate[simulate.index("--hw") + 1]
    return trace, hw, out.getvalue(), json.loads(js.getvalue())


def test_simulate_prints_prefill_and_per_token_figures(readme_run):
    _, _, printed, data = readme_run
    lines = printed.splitlines()
    prefill = next(i for i, line in enumerate(lines) if line.startswith("prefill, per prompt: "))
    decode = next(i for i, line in enumerate(lines)
                  if line.startswith("decode, per token (mean of 4 steps): "))
    for i in (prefill, decode):
        assert " uJ, DRAM " in lines[i] and lines[i + 1].startswith("  vs dense twin: speedup ")
    phases = data["totals"]["phases"]
    token = phases["decode_per_token"]
    assert token["steps"] == 4 and phases["prefill"]["steps"] == 1
    assert f"energy saving {100 * token['energy_saving']:.1f}%" in lines[decode + 1]
    assert f"speedup {token['speedup']:.2f}x" in lines[decode + 1]
    assert f"{token['energy_uj']:.3f} uJ" in lines[decode]


def test_per_token_figures_are_the_apis(readme_run):
    from accelsim.hw import load_hw
    from accelsim.sim.decode import decode_per_token
    from accelsim.trace import open_trace

    trace, hw, printed, data = readme_run
    api = decode_per_token(open_trace(trace), load_hw(hw))
    token = data["totals"]["phases"]["decode_per_token"]
    assert token["energy_uj"] == pytest.approx(api["sparse"].energy_uj)
    assert token["baseline"]["energy_uj"] == pytest.approx(api["dense"].energy_uj)
    assert token["energy_saving"] == pytest.approx(api["energy_saving"])
    assert token["speedup"] == pytest.approx(api["speedup"])
    assert f"energy saving {100 * api['energy_saving']:.1f}%" in printed.split("decode, per token")[1]


def test_untagged_trace_prints_no_phase_lines(capsys):
    assert main(["simulate", "--trace", str(REPO / "traces" / "lenet5_digits_dual.trace"),
                 "--hw", str(REPO / "hw_configs" / "edge_npu_lpddr.yaml"), "--samples", "1"]) == 0
    out = capsys.readouterr().out
    assert "prefill" not in out and "per token" not in out

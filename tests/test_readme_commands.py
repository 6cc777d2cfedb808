"""Every `accelsim ...` command the README shows is real: its verbs exist and its flags are the
parser's (lines marked `# template` stand for a family of commands and are checked only for their
verbs and flags); every `--flag` named in its prose belongs to some verb; every shipped design is
in its designs table; the README's first code block is left as CI runs it."""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from accelsim.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _code_lines(text: str) -> list[str]:
    """Shell lines of the ```bash blocks, continuation lines joined."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip():
                lines.append(line.strip())
    return lines


def readme_commands() -> list[tuple[str, bool]]:
    """``(command, is_template)`` for every `accelsim ...` command of a code block (several per
    line when joined with `&&`), comments cut off."""
    found = []
    for line in _code_lines(README):
        parts = re.split(r"\s#", line, maxsplit=1)      # a shell comment starts at " #"
        code, comment = parts[0], (parts[1] if len(parts) > 1 else "")
        template = "template" in comment.lower()
        for part in code.split("&&"):
            part = part.strip()
            if part.startswith("accelsim "):
                found.append((part, template))
    return found


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def _all_options(parser: argparse.ArgumentParser) -> set[str]:
    found = set(_options(parser))
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _all_options(sub)
    return found


def _argv(command: str) -> list[str]:
    argv = shlex.split(command)[1:]
    if ">" in argv:                                    # shell redirection
        argv = argv[:argv.index(">")]
    return argv


def _walk(argv: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The innermost parser the verbs of ``argv`` reach, and the verbs."""
    parser, verbs = build_parser(), []
    for token in argv:
        if token.startswith("-"):
            break
        sub = _subparser(parser, token.split("|")[0])
        if sub is None:
            break
        parser, verbs = sub, verbs + [token]
    return parser, verbs


COMMANDS = readme_commands()


def test_readme_has_commands_and_templates():
    assert len(COMMANDS) > 30
    templates = [c for c, t in COMMANDS if t]
    assert any("mypkg.models:Net" in c for c in templates)
    assert any("breakdown|latency|memory" in c for c in templates)


@pytest.mark.parametrize("command,template", COMMANDS, ids=[c[:70] for c, _ in COMMANDS])
def test_readme_command_is_real(command, template):
    argv = _argv(command)
    parser, verbs = _walk(argv)
    assert verbs, f"{command}: {argv[0]!r} is not an accelsim verb"
    known = _options(parser)
    flags = [t.split("=")[0] for t in argv if t.startswith("-") and not re.match(r"-\d", t)]
    unknown = [f for f in flags if f not in known]
    assert not unknown, f"{command}: accelsim {' '.join(verbs)} has no {', '.join(unknown)}"
    if template:   # stands for several commands ("KIND|KIND", "...") : verbs and flags only
        for kind in argv[len(verbs) - 1].split("|"):
            assert _subparser(_walk(argv[:len(verbs) - 1])[0], kind) is not None, kind
        return
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:   # argparse refused it: a bad value, a missing argument
        pytest.fail(f"{command}: the parser refuses it (exit {exc.code})")


def test_every_flag_in_the_readme_exists():
    known = _all_options(build_parser())
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    named = set(re.findall(r"`[^`]*?(--[a-z][a-z0-9-]*)", prose))
    missing = sorted(named - known)
    assert not missing, f"README names flags no accelsim verb has: {', '.join(missing)}"


def test_every_shipped_design_is_in_the_designs_table():
    table = README.split("Shipped designs in `hw_configs/`")[1].split("\n\n")[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    listed = {re.match(r"\| `([^`]+)`", row)[1] for row in rows}
    shipped = {p.name for p in (REPO / "hw_configs").glob("*.yaml")}
    assert shipped <= listed, f"not in the README's designs table: {sorted(shipped - listed)}"
    for row in rows:   # file, approximates, model, sparsity, when to use it
        assert len([c for c in row.strip("|").split("|") if c.strip()]) == 5, row


def test_first_code_block_is_what_ci_runs():
    first = re.search(r"```bash\n(.*?)```", README, flags=re.S)[1].splitlines()
    assert first == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 -e . && accelsim demo",
        "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 -e '.[test]' && python -m pytest",
    ]


def test_readme_llm_example_uses_a_shipped_prompt_file():
    capture = next(c for c, _ in COMMANDS if "--prompt-file" in c)
    prompt_file = _argv(capture)[_argv(capture).index("--prompt-file") + 1]
    path = REPO / prompt_file
    assert path.is_file(), f"README's LLM example reads {prompt_file}, which is not shipped"
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    argv = _argv(capture)
    samples = int(argv[argv.index("--samples") + 1])
    tokens = int(argv[argv.index("--prompt-tokens") + 1])
    assert len(lines) >= samples and min(len(line.encode()) for line in lines) >= tokens
    block = next(b for b in re.findall(r"```bash\n(.*?)```", README, flags=re.S)
                 if "--prompt-file" in b)
    assert "pip install -e '.[llm]'" in block    # transformers is optional: say how to get it

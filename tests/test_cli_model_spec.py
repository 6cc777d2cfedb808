"""``--model module:attr`` finds the current folder; import failures are one line with the fix."""
from __future__ import annotations

import subprocess
import sys

import pytest

from accelsim.errors import AccelsimError
from accelsim.zoo import UserCode, build_model

NET = """import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x.flatten(1))
"""
# Run the CLI as the installed script does: the current folder is NOT on sys.path (-I).
CLI = "import sys; from accelsim.cli import main; sys.exit(main(sys.argv[1:]))"


def _accelsim(cwd, *argv):
    return subprocess.run([sys.executable, "-I", "-c", CLI, *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_model_module_in_current_folder_is_found(tmp_path):
    (tmp_path / "mynet.py").write_text(NET)
    done = _accelsim(tmp_path, "trace", "capture", "--model", "mynet:Net", "--data", "random:4",
                     "--samples", "3", "-o", "net.trace")
    assert done.returncode == 0, done.stderr
    assert "wrote net.trace: 1 layers, 3 samples" in done.stdout


def test_missing_model_module_is_one_line_naming_the_folder(tmp_path):
    done = _accelsim(tmp_path, "trace", "capture", "--model", "nonet:Net", "--data", "random:4",
                     "--samples", "1", "-o", "x.trace")
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "no module 'nonet' in the current folder" in lines[0] and str(tmp_path) in lines[0]
    assert not (tmp_path / "x.trace").exists()


@pytest.fixture
def local_modules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith(("brokennet", "needsdep", "torchvision"))]:
        del sys.modules[name]


def test_user_module_with_missing_dependency(local_modules):
    (local_modules / "needsdep.py").write_text("import no_such_dependency_xyz\n")
    with pytest.raises(AccelsimError) as err:
        build_model(UserCode("needsdep:Net"))
    text = str(err.value)
    assert "\n" not in text
    assert "needs the module 'no_such_dependency_xyz'" in text and "pip install" in text


def test_user_module_with_syntax_error_names_file_and_line(local_modules):
    (local_modules / "brokennet.py").write_text("x = 1\ndef broken(:\n")
    with pytest.raises(AccelsimError) as err:
        build_model(UserCode("brokennet:Net"))
    text = str(err.value)
    assert "\n" not in text and "SyntaxError" in text and "brokennet.py, line 2" in text


def test_torchvision_built_for_another_torch_is_one_line_with_the_fix(local_modules, monkeypatch):
    # A torchvision whose compiled operators do not load, as with a build for another torch.
    package = local_modules / "fakesite" / "torchvision"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "raise RuntimeError('operator torchvision::nms does not exist\\n  long C++ trace')\n")
    monkeypatch.syspath_prepend(str(local_modules / "fakesite"))
    with pytest.raises(AccelsimError) as err:
        build_model("torchvision:resnet18")
    text = str(err.value)
    assert "\n" not in text
    assert "torchvision is installed but fails to load" in text
    assert "operator torchvision::nms does not exist" in text
    import torch

    assert f"torchvision build made for torch {torch.__version__}" in text

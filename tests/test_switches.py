"""Environment switches are read where they are used, with one line for a bad value; a closed
output pipe is one line too (issue 53)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from mnist_iter import batched, data
from mnist_iter.cli import UserError, env_seconds, env_switch


@pytest.mark.parametrize("text, on", [
    ("1", True), ("true", True), ("On", True), ("YES", True), (" 0 ", False), ("false", False),
    ("off", False), ("No", False), ("", True)])
def test_on_off_switches_take_the_usual_spellings(monkeypatch, text, on):
    monkeypatch.setenv("CUDA_GRAPHS", text)
    assert env_switch("CUDA_GRAPHS", True) is on
    assert batched.uses_graphs(torch.device("cuda")) is on


@pytest.mark.parametrize("text", ["2", "maybe", "disabled", "0.0"])
def test_a_switch_that_is_neither_is_one_line(monkeypatch, recipe, text):
    monkeypatch.setenv("GPU_BATCH", text)
    with pytest.raises(UserError, match=rf"^GPU_BATCH = '{text}': must be one of 1, true, on, "
                                        r"yes \(on\) or 0, false, off, no \(off\)$"):
        batched.batches_seeds(torch.device("cuda"), recipe)


@pytest.mark.parametrize("text", ["abc", "-5", "0", "inf", "nan", "1e400"])
def test_a_deadline_must_be_finite_and_positive(monkeypatch, tmp_path, text):
    monkeypatch.setenv("MNIST_DOWNLOAD_DEADLINE", text)
    with pytest.raises(UserError, match=rf"^MNIST_DOWNLOAD_DEADLINE = '{text}': must be a number "
                                        r"of seconds > 0$"):
        data.download_file("t10k-labels-idx1-ubyte.gz", "0" * 32, ["http://127.0.0.1:9/"],
                           tmp_path)
    monkeypatch.setenv("MNIST_DOWNLOAD_DEADLINE", "2.5")
    assert env_seconds("MNIST_DOWNLOAD_DEADLINE", 300) == 2.5


def test_a_closed_output_pipe_is_one_line_and_no_traceback():
    code = ("from mnist_iter.cli import command\n@command\ndef main():\n"
            "    raise BrokenPipeError(32, 'Broken pipe')\nmain()\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "stopped: the program reading this command's output closed it (nothing was changed; "
        "the previous outputs are as they were)"]

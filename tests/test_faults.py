"""Fault injection: damaged files of each kind the pipeline reads, a full disk, a read-only
folder, a trickling and a looping mirror, kill -9 of a training and of a download. Every fault
ends in one line naming the file and what to do (no traceback), with the previous outputs
intact, and a plain re-run afterwards works."""
from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, small_params, stop_server
from mnist_iter import data as data_module
from mnist_iter.cli import DataError
from mnist_iter.data import FILES, download_file, load_data

NAME = "t10k-labels-idx1-ubyte.gz"  # the smallest MNIST file


class Workdir:
    """A project folder of the tests' own (params.yaml with two tiny variants, the prepared
    data, resolved recipes) in which the stages run as `python -m stages.<name>`."""

    def __init__(self, path: Path):
        self.path = path
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}

    def stage(self, *args: str, prefix: tuple[str, ...] = (), **env) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, sys.executable, "-m", *args], cwd=self.path,
                              env={**self.env, **env}, capture_output=True, text=True,
                              timeout=600)

    def snapshot(self, *folders: str) -> dict[str, bytes]:
        return {str(p.relative_to(self.path)): p.read_bytes() for folder in folders
                for p in sorted((self.path / folder).rglob("*")) if p.is_file()}


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode not in (0, None), result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_data):
    """A workdir after one good train + evaluate + report of both variants (kept as a template)."""
    path = tmp_path_factory.mktemp("faults")
    (path / "params.yaml").write_text(yaml.safe_dump(small_params(), sort_keys=False))
    (path / "data").mkdir()
    torch.save(mnist_data, path / "data/mnist.pt")
    work = Workdir(path)
    for args in (("stages.configure",), ("stages.train", "first"), ("stages.train", "second"),
                 ("stages.evaluate", "first"), ("stages.evaluate", "second"), ("stages.report",)):
        result = work.stage(*args)
        assert result.returncode == 0, result.stderr
    return work


@pytest.fixture
def work(trained, tmp_path):
    """A fresh copy of the trained workdir for one test to damage."""
    shutil.copytree(trained.path, tmp_path / "w", symlinks=True)
    return Workdir(tmp_path / "w")


# ---- damaged files ----------------------------------------------------------------------------
def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:p.stat().st_size // 2])


DAMAGE = {
    "truncated": _truncate,
    "random bytes": lambda p: p.write_bytes(os.urandom(4096)),
    "empty": lambda p: p.write_bytes(b""),
    "a folder": lambda p: (p.unlink(), p.mkdir()),
    "a tensor": lambda p: torch.save(torch.zeros(3), p),
    "a dict without the test set": lambda p: torch.save({"train_images": torch.zeros(1)}, p),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_prepared_data_is_one_line(tmp_path, mnist_data, damage):
    path = tmp_path / "mnist.pt"
    torch.save(mnist_data, path)
    DAMAGE[damage](path)
    with pytest.raises(DataError) as err:
        load_data(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "`dvc repro -f prepare` rebuilds it" in message
    assert "\n" not in message


@pytest.mark.slow  # stages in subprocesses
@pytest.mark.parametrize("damage", ["truncated", "a folder"])
def test_train_and_evaluate_on_damaged_data_stop_with_one_line(work, damage):
    before = work.snapshot("models", "reports")
    DAMAGE[damage](work.path / "data/mnist.pt")
    for args in (("stages.train", "first"), ("stages.evaluate", "first")):
        one_line_error(work.stage(*args), "data/mnist.pt", "dvc repro -f prepare")
    assert work.snapshot("models", "reports") == before


REPORT_DAMAGE = {
    "runs.csv empty": ("reports/variants/first/train/runs.csv", b""),
    "runs.csv binary": ("reports/variants/first/train/runs.csv", bytes(range(256)) * 8),
    "runs.csv other columns": ("reports/variants/first/train/runs.csv", b"a,b\n1,2\n"),
    "runs.csv text in numbers": ("reports/variants/first/train/runs.csv",
                                 b"seed,epoch,test_acc,test_loss\n1,1,high,0.1\n"),
    "eval json cut": ("reports/variants/first/eval/metrics.json", b'{"params": 75'),
    "eval json without params": ("reports/variants/first/eval/metrics.json", b'{"x": 1}'),
    "eval json wrong type": ("reports/variants/first/eval/metrics.json", b'{"params": "many"}'),
    "predictions cut": ("reports/confusion/first.csv", b"actual,predicted\n7,"),
    "predictions other columns": ("reports/confusion/first.csv", b"a,b\n1,2\n"),
    "train json wrong type": ("reports/variants/first/train/metrics.json",
                              b'{"device_name": 3, "arithmetic": "fp32"}'),
    "train json a list": ("reports/variants/first/train/metrics.json", b"[1, 2]"),
    "eval json a list": ("reports/variants/first/eval/metrics.json", b"[75]"),
}


@pytest.mark.slow  # stages in subprocesses
@pytest.mark.parametrize("damage", REPORT_DAMAGE)
def test_report_on_damaged_per_variant_files_is_one_line(work, damage):
    rel, content = REPORT_DAMAGE[damage]
    before = work.snapshot("reports/metrics")
    (work.path / rel).write_bytes(content)
    stage = "train" if "/train/" in rel else "evaluate"
    one_line_error(work.stage("stages.report"), rel, f"dvc repro -f {stage}@first")
    assert work.snapshot("reports/metrics") == before


@pytest.mark.slow  # stages in subprocesses
def test_report_on_a_missing_per_variant_file(work):
    (work.path / "reports/confusion/second.csv").unlink()
    one_line_error(work.stage("stages.report"), "reports/confusion/second.csv", "dvc repro")


# ---- full disk, read-only folder ---------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (needs the right to mount: root in a container that allows it)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow  # stages in subprocesses
@pytest.mark.parametrize("stage, folder, written", [
    (("stages.train", "first"), "models/first", "models/first/seed1.pt"),
    (("stages.evaluate", "first"), "reports/confusion", "reports/confusion/first.csv")])
def test_full_disk_changes_no_output_of_a_stage(work, tiny_disk, stage, folder, written):
    """One output folder on a disk with room for the write probe only: the stage stops with one
    line naming the file, and the old outputs are all still there, together."""
    shutil.copytree(work.path / folder, tiny_disk / "moved")
    shutil.rmtree(work.path / folder)
    (work.path / folder).symlink_to(tiny_disk / "moved")
    before = work.snapshot("models", "reports")
    free = shutil.disk_usage(tiny_disk).free
    (tiny_disk / "filler").write_bytes(b"\0" * (free - 8192))
    message = one_line_error(work.stage(*stage), "no space left on device", written,
                             "nothing was changed")
    assert "MNIST_MIRROR" not in message  # the advice fits the error
    assert work.snapshot("models", "reports") == before
    assert not [p for p in (tiny_disk / "moved").iterdir() if ".tmp-" in p.name]
    (tiny_disk / "filler").unlink()
    assert work.stage(*stage).returncode == 0  # room again: a plain re-run


@pytest.mark.slow  # stages in subprocesses
def test_read_only_output_folder_fails_before_training(work):
    before = work.snapshot("models", "reports")
    os.chmod(work.path / "models/first", 0o555)
    # as root the permission bits do not apply: drop the capabilities that override them
    prefix = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--") if (
        os.geteuid() == 0) else ()
    if prefix and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: the folder's permission bits do not apply")
    start = time.monotonic()
    result = work.stage("stages.train", "first", prefix=prefix)
    one_line_error(result, "permission denied", "models/first", "make the folder writable")
    assert "epoch" not in result.stdout  # checked before any training
    assert time.monotonic() - start < 60
    os.chmod(work.path / "models/first", 0o755)
    assert work.snapshot("models", "reports") == before


# ---- slow and looping mirrors ------------------------------------------------------------------
class _Trickle(http.server.BaseHTTPRequestHandler):
    """Answers every file with its full length promised and then one byte every 50 ms: each read
    succeeds, so only an overall deadline ends it."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(10 ** 6))
        self.end_headers()
        try:
            for _ in range(10 ** 6):
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    def log_message(self, *args):
        pass


class _Loop(_Trickle):
    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", self.path)
        self.end_headers()


@pytest.fixture
def serve():
    servers = []

    def start(handler) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        stop_server(server)


def test_trickling_mirror_is_abandoned_at_the_deadline(tmp_path, mnist_dir, serve, monkeypatch):
    monkeypatch.setattr(data_module, "DEADLINE_S", 2.0)
    url = serve(_Trickle)
    start = time.monotonic()
    assert download_file(NAME, FILES[NAME], [url, str(mnist_dir)], tmp_path) == str(mnist_dir)
    assert time.monotonic() - start < 10
    with pytest.raises(DataError, match=r"too slow: [\d,]+ bytes in 2 s, gave up"):
        download_file(NAME, FILES[NAME], [url], tmp_path / "alone")
    assert not list((tmp_path / "alone").glob(".*"))  # no temp file left


def test_redirect_loop_is_one_reason(tmp_path, mnist_dir, serve):
    url = serve(_Loop)
    with pytest.raises(DataError) as err:
        download_file(NAME, FILES[NAME], [url], tmp_path)
    assert f"{url}: redirect loop" in str(err.value) and "\n" not in str(err.value)
    assert download_file(NAME, FILES[NAME], [url, str(mnist_dir)], tmp_path) == str(mnist_dir)


# ---- kill -9 -----------------------------------------------------------------------------------
def _processes_in(folder: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")) == folder:
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


def _start(work: Workdir, *args: str, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=work.path,
                            env={**work.env, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.mark.slow
def test_kill_9_of_a_training_then_a_plain_rerun(work):
    """Two seeds in two lanes, killed mid-epoch: the lanes stop too, the old outputs stay, and a
    temp file a kill during the final write would leave is swept by the re-run."""
    params = yaml.safe_load((work.path / "params.yaml").read_text())
    params.update(seeds=2, epochs=3, train_subset=4096)
    (work.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert work.stage("stages.configure").returncode == 0
    before = work.snapshot("models", "reports")
    proc = _start(work, "stages.train", "first", TRAIN_CORES="2")
    deadline = time.monotonic() + 120
    lines = []
    while time.monotonic() < deadline:
        lines.append(proc.stdout.readline())
        if "parallel lanes" in lines[-1]:
            break
    time.sleep(3)  # the lanes are training
    assert len(_processes_in(work.path)) >= 3, lines  # the stage and its two lanes
    proc.kill()  # SIGKILL to the stage only; its lanes must notice on their own
    proc.wait()
    deadline = time.monotonic() + 30
    while _processes_in(work.path) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_in(work.path), "a lane trained on after its stage was killed"
    assert work.snapshot("models", "reports") == before
    stale = work.path / "models/first" / f".seed1.pt.tmp-{proc.pid}"
    stale.write_bytes(b"half a checkpoint")  # what a kill during the final write leaves
    rerun = work.stage("stages.train", "first", TRAIN_CORES="2")
    assert rerun.returncode == 0, rerun.stderr
    assert not stale.exists()
    runs = (work.path / "reports/variants/first/train/runs.csv").read_text()
    assert runs.count("\n") == 1 + 2 * 3  # header + 2 seeds x 3 epochs


@pytest.mark.slow
def test_kill_9_of_a_download_then_a_plain_rerun(work, mnist_dir, serve):
    raw = work.path / "data/MNIST/raw"
    proc = _start(work, "stages.download", MNIST_MIRROR=serve(_Trickle))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (raw.is_dir() and list(raw.glob(".*.tmp-*"))):
        time.sleep(0.2)
    leftovers = list(raw.glob(".*.tmp-*"))
    assert leftovers, "the download never started"
    proc.kill()
    proc.wait()
    assert all(p.exists() for p in leftovers)  # kill -9 leaves its temp file
    rerun = work.stage("stages.download", MNIST_MIRROR=str(mnist_dir))
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in raw.iterdir()) == sorted(FILES)  # and nothing else


@pytest.mark.slow  # stages in subprocesses
@pytest.mark.parametrize("under_dvc", [False, True])
def test_configure_that_cannot_write_keeps_the_previous_configs(work, under_dvc):
    """A write error (file size limit 0) changes nothing, and says so truthfully: under
    `dvc repro` DVC has already removed the stage's outputs, so the message says that."""
    before = work.snapshot("configs")
    env = {"DVC_STAGE": "configure"} if under_dvc else {}
    result = work.stage("stages.configure", prefix=("bash", "-c", 'ulimit -f 0; exec "$@"', "-"),
                        **env)
    line = one_line_error(result, "configs/")
    if under_dvc:
        assert "nothing was changed" not in line
        assert "DVC had removed its previous outputs" in line and "dvc repro configure" in line
    else:
        assert line.endswith("(nothing was changed; the previous outputs are as they were)")
    assert work.snapshot("configs") == before

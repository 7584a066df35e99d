"""Shared fixtures: the real MNIST files from ../shared/mnist, a loopback HTTP mirror, and a
tiny synthetic IDX writer."""
from __future__ import annotations

import functools
import gzip
import http.server
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = Path(os.environ.get("MNIST_SHARED", ROOT.parent / "shared" / "mnist"))
sys.path.insert(0, str(ROOT))

from mnist_iter import cpu_math  # noqa: E402  (the path above first)

cpu_math.preset()  # before torch loads: the tests train in the default, portable arithmetic


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"{SHARED_MNIST}: the MNIST files are needed (set MNIST_SHARED to their folder)")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def mnist_data(mnist_dir, tmp_path_factory) -> dict:
    from mnist_iter.data import prepare
    from mnist_iter.files import outputs

    with outputs() as out:
        return prepare(mnist_dir, out, tmp_path_factory.mktemp("prepared") / "mnist.pt")


@pytest.fixture(scope="session")
def small_data(mnist_data) -> dict:
    """The real images, shrunk for tests that train: the first 4,096 training and 1,000 test
    images (evaluating all 10,000 test images every epoch was most of those tests' time)."""
    small = dict(mnist_data)
    for split, count in (("train", 4096), ("test", 1000)):
        for kind in ("images", "labels"):
            small[f"{split}_{kind}"] = mnist_data[f"{split}_{kind}"][:count]
    return small


def small_params(variants: dict | None = None, **top) -> dict:
    """A params.yaml mapping of the tests' own: every recipe key's top-level default, and two
    small variants unless others are given (tests never depend on the project's variant names)."""
    from mnist_iter.recipe import KEYS

    defaults = {"seed": 1, "seeds": 1, "threads": 1, "epochs": 1, "batch_size": 64,
                "train_subset": 512, "val_size": 0, "optimizer": "sgd", "lr": 0.04,
                "momentum": 0.9, "weight_decay": 0.0, "label_smoothing": 0.0, "scheduler": "step",
                "step": 2, "gamma": 0.2, "step_start": 1, "patience": 2, "factor": 0.1,
                "plateau_on": "val", "max_lr": 0.1, "dropout": 0.05, "rotation": 7.0,
                "scale": 0.0, "translate": 0.0, "fill": 0.0, "device": "cpu",
                "compile": "none", "amp": False, "widths": "4-4-4-4-4-4-4", "separable": 0,
                "ema": 0.0, "cpu_math": "portable"}
    assert set(defaults) == {k.name for k in KEYS}
    raw = {"data": {"mirrors": []}, **defaults, **top}
    raw["variants"] = variants if variants is not None else {
        "first": {"arch": "writeup002_it3", "writeup": "002 iteration 3"},
        "second": {"arch": "ours", "widths": "8-10-12-8-12-14-14", "improves_on": "first",
                   "scheduler": "onecycle"},
    }
    return raw


@pytest.fixture
def recipe():
    """A tiny recipe of the tests' own (512 images, 1 epoch, CPU)."""
    from mnist_iter.recipe import parse_params

    return parse_params(small_params()).variant("first").recipe


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] | None = None  # when a list, every GET path is appended to it

    def do_GET(self):
        if self.requests is not None:
            self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


def start_server(directory: Path, requests: list[str] | None = None):
    """Serve `directory` on a loopback port; returns (server, base URL). Shut it down after."""
    handler = functools.partial(type("Handler", (_QuietHandler,), {"requests": requests}),
                                directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def run_queue(project, jobs: int, timeout: float = 1800) -> str:
    """Run the queued experiments of `project` (anything with .path, .env and .run(*cmd,
    check=...)) as the README does, `TRAIN_CORES=1 dvc queue start -j JOBS`; wait until `dvc queue
    status` lists nothing queued or running, stop the workers and return the last status.
    `queue start` writes to a file, not a pipe: a captured `dvc queue start` returned only once
    the whole queue was done (measured: 42 s for a 25 s task captured, 1.5 s to a file), as if
    DVC's detached workers held its pipes open."""
    log = project.path / ".dvc/tmp/queue-start.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        result = subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=project.path,
                                env={**project.env, "TRAIN_CORES": "1"}, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"dvc queue start exited {result.returncode}:\n{log.read_text()}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = project.run("dvc", "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    project.run("dvc", "queue", "stop", check=False)
    return status


def stop_server(server) -> None:
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_mirror():
    """Start a loopback HTTP server for a directory; yields a function dir -> base URL."""
    servers = []

    def serve(directory: Path) -> str:
        server, url = start_server(directory)
        servers.append(server)
        return url

    yield serve
    for server in servers:
        stop_server(server)


def write_idx(path: Path, array: np.ndarray, magic: int | None = None, gz: bool = True) -> Path:
    """Write a uint8 array as an IDX file (gzip'd by default)."""
    magic = (0x0800 | array.ndim) if magic is None else magic
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path

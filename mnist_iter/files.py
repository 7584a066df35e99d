"""Where the pipeline reads and writes, and how: every output set appears whole or not at all."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from mnist_iter.cli import DataError, UserError, os_error_line, unchanged_note

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DATA_FILE = Path("data/mnist.pt")
RAW_DIR = Path("data/MNIST/raw")
CONFIG_DIR = Path("configs")
MODELS = Path("models")
REPORTS = Path("reports")
SEARCH = Path("search")  # the search for smaller networks: its own dvc.yaml, params and outputs
SEARCH_CONFIGS = SEARCH / CONFIG_DIR  # the search's resolved recipes, one a candidate
VARIANT_REPORTS = REPORTS / "variants"
TMP_MARK = ".tmp-"  # temporary files are named .<name>.tmp-<pid>; stale ones are swept


def screen_metrics(candidate: str) -> Path:
    """A screen candidate's validation numbers (a DVC metrics file)."""
    return SEARCH / "results" / f"{candidate}.json"


def screen_runs(candidate: str) -> Path:
    """... and every seed's epochs (validation columns only)."""
    return SEARCH / "runs" / f"{candidate}.csv"


def checkpoint_dir(variant: str) -> Path:
    """models/<v>/: one checkpoint per seed, seed<N>.pt."""
    return MODELS / variant


def checkpoint(variant: str, seed: int) -> Path:
    return checkpoint_dir(variant) / f"seed{seed}.pt"


def config_file(variant: str) -> Path:
    """The resolved recipe the root's configure wrote for a variant."""
    return CONFIG_DIR / f"{variant}.json"


def search_config(candidate: str) -> Path:
    """The resolved recipe the search's configure wrote for a candidate."""
    return SEARCH_CONFIGS / f"{candidate}.json"


def train_dir(variant: str) -> Path:
    return VARIANT_REPORTS / variant / "train"


def eval_dir(variant: str) -> Path:
    return VARIANT_REPORTS / variant / "eval"


def confusion_file(variant: str) -> Path:
    """actual,predicted of every test image (the first seed's checkpoint), in test-set order."""
    return REPORTS / "confusion" / f"{variant}.csv"


def mistakes_file(variant: str) -> Path:
    return REPORTS / "mistakes" / f"{variant}.png"


def sweep_stale(folder: Path) -> None:
    """Remove temporary files a killed run (kill -9, power loss) left behind in `folder`."""
    for path in folder.glob(f".*{TMP_MARK}*") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            path.unlink()


def remove_others(folder: Path, pattern: str, keep: set[Path]) -> None:
    """After a set of outputs is in place: remove the files of `folder` matching `pattern` that
    it does not hold (a variant or candidate no longer in params.yaml)."""
    for stale in set(folder.glob(pattern)) - set(keep):
        stale.unlink()


def check_writable(*folders: Path) -> None:
    """Fail now, not after an hour of training, if an output folder cannot take a file."""
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=f".probe{TMP_MARK}"):
                pass
        except OSError as e:
            raise UserError(os_error_line(e, f"writing to {folder}/")) from None


MANIFEST = "outputs.json"  # a stage's set of outputs: each file's SHA-256, written last


def sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Outputs:
    """A set of files written together: each is written to a temporary file beside its target,
    and only when all are complete are they renamed into place. If anything fails, the
    temporary files are removed and the previous outputs stay as they were. With a `manifest`,
    a file listing every other one with its SHA-256 is written last: a reader that checks it
    (check_outputs) tells a whole set from one a kill cut between two renames."""

    def __init__(self, manifest: Path | None = None) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self.manifest = manifest

    def path(self, target: Path | str) -> Path:
        """A temporary path to write `target`'s content to."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}{TMP_MARK}{os.getpid()}")
        self._pending.append((tmp, target))
        return tmp

    def text(self, target: Path | str, text: str) -> None:
        self.path(target).write_text(text)

    def json(self, target: Path | str, obj: Any) -> None:
        self.text(target, json.dumps(obj, indent=2) + "\n")

    def torch(self, target: Path | str, obj: Any) -> None:
        """torch.save through a buffer: the file's bytes do not depend on its (temporary) name,
        which torch.save would write into the archive, and a full disk is an OSError (ENOSPC)
        rather than torch's 'basic_ios::clear: iostream error'."""
        import io

        import torch

        buffer = io.BytesIO()
        torch.save(obj, buffer)
        self.path(target).write_bytes(buffer.getbuffer())

    def figure(self, target: Path | str, fig: Figure, dpi: int = 100) -> None:
        """Lay out, write as PNG and close a matplotlib figure."""
        import matplotlib.pyplot as plt

        fig.tight_layout()
        fig.savefig(self.path(target), format="png", dpi=dpi)
        plt.close(fig)

    def commit(self) -> None:
        for tmp, target in self._pending:
            try:
                with open(tmp, "rb") as f:  # the data is on disk before any rename
                    os.fsync(f.fileno())
            except OSError as e:
                e.filename = e.filename or str(tmp)
                raise
        for tmp, target in self._pending:
            os.replace(tmp, target)
        if self.manifest is not None:
            listed = {str(target): sha256(target) for _, target in self._pending}
            tmp = self.manifest.with_name(f".{self.manifest.name}{TMP_MARK}{os.getpid()}")
            with open(tmp, "w") as f:
                f.write(json.dumps(listed, indent=2) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.manifest)

    def discard(self) -> None:
        for tmp, _ in self._pending:
            with contextlib.suppress(OSError):
                tmp.unlink()


def check_outputs(manifest: Path, stage: str) -> None:
    """DataError unless every file `manifest` lists is the one its stage wrote with the others."""
    again = f"`dvc repro -f {stage}` writes the set again"
    try:
        listed = json.loads(manifest.read_text())
        assert isinstance(listed, dict) and all(isinstance(v, str) for v in listed.values())
    except FileNotFoundError:
        raise DataError(f"{manifest}: missing (it lists the files {stage} wrote together); "
                        f"{again}") from None
    except (OSError, ValueError, AssertionError):
        raise DataError(f"{manifest}: damaged; {again}") from None
    for name, digest in listed.items():
        if not Path(name).is_file() or sha256(name) != digest:
            raise DataError(f"{name}: not the file {stage} wrote with the others in {manifest} "
                            f"(a run stopped while it switched its outputs, or a file replaced "
                            f"by hand); {again}")


@contextlib.contextmanager
def outputs(manifest: Path | None = None) -> Iterator[Outputs]:
    """with outputs() as out: out.json(...); out.text(...) -> all renamed into place at the end
    (then the manifest, when one is named)."""
    out = Outputs(manifest)
    try:
        yield out
        out.commit()
    except OSError as e:
        out.discard()
        # a failed write() names no file: it was the file being written, the last one handed out
        target = next((t for tmp, t in out._pending if e.filename in (str(tmp), str(t))),
                      out._pending[-1][1] if out._pending and e.filename is None else None)
        where = f"writing {target}" if target else "writing the outputs"
        raise UserError(f"{os_error_line(e, where)} ({unchanged_note()})") from None
    except BaseException:
        out.discard()
        raise


def write_json(path: Path | str, obj: Any) -> None:
    with outputs() as out:
        out.json(path, obj)

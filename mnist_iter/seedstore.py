"""Finished seeds kept across interrupted runs: .seeds/<variant>/<key>.pt, one file a seed.

A seed's run (its weights and its epochs) is saved here the moment it finishes, written whole
(a temporary file, then a rename), under a key made of everything its numbers depend on: its
recipe (its own seed included), the training code (TRAINING_CODE's bytes), the prepared data's
bytes, the arithmetic (and, where that is not portable, the device it ran on), torch's version,
and whether it saw the test images. A later run of the same variant takes a seed whose key
matches instead of training it again; any other change trains afresh. The folder is a cache, ignored by Git and DVC: deleting
it costs only re-training. Queued experiments (`dvc exp run --queue`) run in copies of the
project, so their finished seeds stay with their copy.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_iter.cli import UserError, os_error_line, unchanged_note
from mnist_iter.files import DATA_FILE, sha256

STORE = Path(".seeds")
# the modules whose code decides a seed's numbers (a stage's own file only writes them out)
TRAINING_CODE = ("augment", "batched", "cpu_math", "device", "engine", "lanes", "models",
                 "schedule")


def code_digest() -> str:
    """The training code's SHA-256, read from this package (wherever the command runs)."""
    digest = hashlib.sha256()
    for name in TRAINING_CODE:
        digest.update(name.encode() + b"\0" + (Path(__file__).parent / f"{name}.py").read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class SeedStore:
    """Where one variant's finished seeds are kept, and what else their keys hold. Picklable:
    a lane process saves its own seed as it finishes."""
    folder: Path
    context: tuple  # (name, value) pairs: code, arithmetic, device, torch, test

    @classmethod
    def for_run(cls, name: str, arithmetic: str, portable: bool, device_name: str, test: bool,
                root: Path = STORE, data: Path = DATA_FILE) -> SeedStore:
        context = {"code": code_digest(), "arithmetic": arithmetic, "torch": torch.__version__,
                   "test": test, "device": None if portable else device_name,
                   "data": sha256(data) if data.is_file() else None}
        return cls(root / name, tuple(sorted(context.items())))

    def key(self, recipe) -> str:
        what = {"recipe": recipe.to_dict(), **dict(self.context)}
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]

    def path(self, recipe) -> Path:
        return self.folder / f"seed{recipe.seed}-{self.key(recipe)}.pt"

    def load(self, recipe) -> tuple[dict, list[dict]] | None:
        """The seed's weights and epochs, or None: never trained with this key, or its file is
        not whole (then it trains again)."""
        path = self.path(recipe)
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            state, history = saved["state_dict"], saved["history"]
            if saved["key"] != self.key(recipe) or not history or not all(
                    isinstance(v, torch.Tensor) for v in state.values()):
                return None
            return state, history
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 (damaged: train it again)
            return None

    def save(self, recipe, state: dict, history: list[dict]) -> None:
        """Written whole or not at all; a full or read-only disk is one line (UserError)."""
        path = self.path(recipe)
        partial = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"key": self.key(recipe), "state_dict": state, "history": history},
                       partial)
            partial.replace(path)
        except (OSError, RuntimeError) as e:  # torch.save reports a full disk as RuntimeError
            partial.unlink(missing_ok=True)
            why = os_error_line(e, f"keeping seed {recipe.seed} in {self.folder}") \
                if isinstance(e, OSError) else f"could not keep seed {recipe.seed} in " \
                f"{self.folder} ({str(e).splitlines()[0][:80]})"
            raise UserError(f"{why} ({unchanged_note()})") from None


def seed_ranges(seeds: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    parts, run = [], []
    for seed in sorted(seeds):
        if run and seed != run[-1] + 1:
            parts.append(run)
            run = []
        run.append(seed)
    if run:
        parts.append(run)
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in parts)

"""The checkpoint format: one file per trained seed, models/<variant>/seed<N>.pt, and `load_model`.

A checkpoint holds plain tensors and the resolved recipe it was trained with (no pickled code):
{"format", "variant", "seed", "recipe", "state_dict"}. `recipe` is the variant's recipe as
configure wrote it (configs/<v>.json); `seed` is the run's own seed.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from torch import nn

from mnist_iter.cli import UserError
from mnist_iter.models import model_for
from mnist_iter.recipe import make_recipe

FORMAT = 3  # 3: one file per seed, with variant and seed (2: the first seed only, models/<v>.pt)
MAX_BYTES = 256 * 2**20  # the largest checkpoint unpacked; w3_skel's (257k params) is ~1 MB
RETRAIN = "run `dvc repro` to train it again"


def content(model: nn.Module, variant: str, seed: int, recipe: dict) -> dict:
    """What a checkpoint file holds."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"format": FORMAT, "variant": variant, "seed": seed, "recipe": recipe,
            "state_dict": state}


def _read(path: Path) -> dict:
    """The file's content, refused before anything is inflated when its archive unpacks to more
    than MAX_BYTES, and read with `weights_only=True` so that a file that would run code is
    refused too."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a checkpoint; pick a seed's file in it, "
                        f"e.g. {path / 'seed1.pt'}")
    try:
        if not zipfile.is_zipfile(open(path, "rb")):
            raise UserError(f"{path}: not a checkpoint this project can load safely (not a "
                            f"torch.save archive); {RETRAIN}")
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
            if unpacked > MAX_BYTES:
                raise UserError(f"{path}: unpacks to {unpacked:,} bytes, more than the "
                                f"{MAX_BYTES:,} a checkpoint of this project can hold; {RETRAIN}")
            damaged = archive.testzip()  # every member against the archive's own CRC-32
        if damaged is not None:
            raise UserError(f"{path}: damaged (its member {damaged} fails the archive's own "
                            f"checksum); {RETRAIN}")
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint; run `dvc repro` to train it") from None
    except UserError:
        raise
    except Exception as e:  # pickle.UnpicklingError, RuntimeError, EOFError, zipfile errors...
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: not a checkpoint this project can load safely ({first}); "
                        f"{RETRAIN}") from None


def load_model(path: Path | str, expect: tuple[str, int, dict] | None = None) -> nn.Module:
    """Rebuild a trained network from one seed's checkpoint, in eval mode, on the CPU.

    The model takes images in [0, 1], shape (N, 1, 28, 28), and returns log-probabilities.
    Refused, with one line saying what to do: a file that would run code, one that unpacks to
    more than MAX_BYTES, one whose recipe or weights do not fit this project's architectures,
    and one whose weights are not all finite. With `expect` (variant, seed, resolved recipe),
    also one that holds another variant or seed, or was trained with another recipe: a file
    copied or renamed into place."""
    ckpt = _read(Path(path))
    if not (isinstance(ckpt, dict) and isinstance(ckpt.get("recipe"), dict)
            and isinstance(ckpt.get("state_dict"), dict)):
        raise UserError(f"{path}: not a checkpoint written by this project's train stage; {RETRAIN}")
    if ckpt.get("format") != FORMAT:
        raise UserError(f"{path}: checkpoint format {ckpt.get('format')!r}, this version reads "
                        f"{FORMAT}; {RETRAIN}")
    try:
        recipe = make_recipe(ckpt["recipe"], where="recipe.")
        model = model_for(recipe)
    except UserError as e:
        raise UserError(f"{path}: its recipe is not valid ({e}); {RETRAIN}") from None
    if expect is not None:
        _claims(path, ckpt, recipe, *expect)
    theirs, ours = ckpt["state_dict"], model.state_dict()
    missing, unexpected = set(ours) - set(theirs), set(theirs) - set(ours)
    misshaped = [k for k in set(ours) & set(theirs)
                 if not isinstance(theirs[k], torch.Tensor) or theirs[k].shape != ours[k].shape]
    if missing or unexpected or misshaped:
        raise UserError(f"{path}: weights do not fit architecture {recipe.arch!r} ({len(missing)} "
                        f"missing, {len(unexpected)} unexpected, {len(misshaped)} of the wrong "
                        f"shape); {RETRAIN}")
    bad = [k for k, v in theirs.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"{path}: {bad[0]} holds NaN or inf weights ({len(bad)} tensor(s)); "
                        f"{RETRAIN}")
    model.load_state_dict(theirs)
    return model.eval()


def _claims(path, ckpt: dict, recipe, variant: str, seed: int, wanted: dict) -> None:
    """The checkpoint is the one the reading stage asks for: its variant, seed and recipe."""
    fix = f"`dvc repro -f train@{variant}` writes it again"
    if (ckpt.get("variant"), ckpt.get("seed")) != (variant, seed):
        raise UserError(f"{path}: holds {ckpt.get('variant')!r} seed {ckpt.get('seed')!r}, not "
                        f"{variant!r} seed {seed} (a file copied or renamed into place); {fix}")
    theirs, ours = recipe.to_dict(), make_recipe(wanted).to_dict()
    differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if differ:
        raise UserError(f"{path}: trained with {differ[0]} = {theirs.get(differ[0])!r}, but the "
                        f"recipe asks for {ours.get(differ[0])!r}; {fix}")

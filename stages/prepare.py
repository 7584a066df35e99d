"""prepare: parse the IDX files into one compact tensor file.

    python -m stages.prepare [RAW_DIR] [OUT_FILE]

Output: {split}_images uint8 (N, 28, 28), {split}_labels int64 (N,), and the training set's
pixel mean and std on the [0, 1] scale.
"""
from __future__ import annotations

import gzip
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

from stages.download import FILES, RAW_DIR
from stages.errors import DataError, cli
from stages.io import atomic_path

DATA_FILE = Path("data/mnist.pt")
SIDE = 28
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801  # unsigned bytes, 3 resp. 1 dimensions
SPLITS = {"train": ("train", 60_000), "test": ("t10k", 10_000)}


def read_idx(path: Path, magic: int, count: int) -> np.ndarray:
    """Read one gzip'd IDX file, checking magic number, count, dimensions and length."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run the download stage first") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a complete gzip file ({e})") from None
    ndim = magic & 0xFF
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    got_magic = struct.unpack(">I", raw[:4])[0]
    if got_magic != magic:
        raise DataError(f"{path}: wrong magic number 0x{got_magic:08x}, expected 0x{magic:08x}")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    want = (count, SIDE, SIDE)[:ndim]
    if dims != want:
        raise DataError(f"{path}: dimensions {dims}, expected {want}")
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise DataError(f"{path}: {len(body)} data bytes, header promises {int(np.prod(dims))}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def load_split(raw_dir: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    prefix, count = SPLITS[split]
    images = read_idx(raw_dir / f"{prefix}-images-idx3-ubyte.gz", IMAGES_MAGIC, count)
    labels = read_idx(raw_dir / f"{prefix}-labels-idx1-ubyte.gz", LABELS_MAGIC, count)
    if labels.max() > 9:
        raise DataError(f"{raw_dir}/{prefix}-labels-idx1-ubyte.gz: label {labels.max()} > 9")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def prepare(raw_dir: Path, out_file: Path) -> dict:
    data = {}
    for split in SPLITS:
        data[f"{split}_images"], data[f"{split}_labels"] = load_split(raw_dir, split)
    pixels = data["train_images"].double() / 255
    data["mean"], data["std"] = pixels.mean().item(), pixels.std().item()
    with atomic_path(out_file) as tmp:
        torch.save(data, tmp)
    return data


def load_data(path: Path | str = DATA_FILE) -> dict:
    try:
        return torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run `dvc repro prepare` first") from None


@cli
def main() -> None:
    raw_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else RAW_DIR
    out_file = Path(sys.argv[2]) if len(sys.argv) > 2 else DATA_FILE
    assert set(FILES) == {f"{p}-{k}-idx{d}-ubyte.gz" for p, _ in SPLITS.values()
                          for k, d in (("images", 3), ("labels", 1))}
    d = prepare(raw_dir, out_file)
    print(f"train {tuple(d['train_images'].shape)}  test {tuple(d['test_images'].shape)}  "
          f"mean {d['mean']:.4f}  std {d['std']:.4f}  -> {out_file}")


if __name__ == "__main__":
    main()

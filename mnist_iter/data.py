"""MNIST: the four canonical files (MD5-checked, mirrors tried in order, each with a deadline),
their IDX parsing, the prepared tensor file, and its loading with damage checks."""
from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import os
import shutil
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mnist_iter.cli import DataError, UserError, env_seconds, os_error_line
from mnist_iter.files import DATA_FILE, Outputs, sweep_stale

FILES = {  # name -> MD5, the sums torchvision's datasets.MNIST checks
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
SPLITS = {"train": ("train", 60_000), "test": ("t10k", 10_000)}  # split -> (file prefix, count)
SIDE = 28
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801  # unsigned bytes, 3 resp. 1 dimensions
CHUNK = 1 << 16
READ_TIMEOUT_S = 30  # one read of a socket
DEADLINE_S = 300.0  # one whole file from one mirror; $MNIST_DOWNLOAD_DEADLINE (seconds) sets another


# ---- download ------------------------------------------------------------------------------
def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def mirror_list(configured: list[str] | tuple[str, ...]) -> list[str]:
    env = os.environ.get("MNIST_MIRROR", "").strip()
    return ([env] if env else []) + list(configured)


def _fetch_url(url: str, dest: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    req = urllib.request.Request(url, headers={"User-Agent": "mnist-iterations"})
    with urllib.request.urlopen(req, timeout=READ_TIMEOUT_S) as resp, open(dest, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        got = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, delay=1.0,
                  leave=False) as bar:
            for chunk in iter(lambda: resp.read1(CHUNK), b""):
                out.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"too slow: {got:,} bytes in {seconds:g} s, gave up")
        if total is not None and got != total:
            raise OSError(f"truncated: got {got} of {total} bytes")


def _fetch(mirror: str, name: str, dest: Path) -> None:
    """Copy `name` from `mirror` (directory or URL) to `dest`; raise OSError/URLError on failure."""
    scheme = urllib.parse.urlparse(mirror).scheme
    if scheme in ("http", "https", "ftp"):
        _fetch_url(mirror.rstrip("/") + "/" + name, dest,
                   env_seconds("MNIST_DOWNLOAD_DEADLINE", DEADLINE_S))
    else:
        src = Path(urllib.parse.urlparse(mirror).path if scheme == "file" else mirror) / name
        shutil.copyfile(src, dest)


def _reason(e: Exception) -> str:
    if isinstance(e, urllib.error.HTTPError):
        if "infinite loop" in str(e.reason) or e.code in (301, 302, 303, 307, 308):
            return "redirect loop"
        return f"HTTP {e.code} {str(e.reason).splitlines()[0] if e.reason else ''}".strip()
    if isinstance(e, urllib.error.URLError):
        return f"unreachable ({e.reason})"
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, (TimeoutError, http.client.IncompleteRead)):
        return str(e) or "timed out"
    return (str(e) or type(e).__name__).splitlines()[0]


def download_file(name: str, md5: str, mirrors: list[str], out_dir: Path) -> str:
    """Fetch one file into out_dir from the first mirror that serves it intact; return that mirror."""
    dest = out_dir / name
    if dest.is_file() and md5sum(dest) == md5:
        return "already present"
    failures = []
    for mirror in mirrors:
        out = Outputs()
        tmp = out.path(dest)
        try:
            _fetch(mirror, name, tmp)
            got = md5sum(tmp)
            if got != md5:
                raise ValueError(f"MD5 mismatch ({got}, expected {md5})")
            out.commit()
            return mirror
        except OSError as e:
            ours = e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) or str(
                e.filename or "").startswith(str(out_dir))
            if ours:  # our side failed (disk full, read-only): no mirror helps
                raise UserError(os_error_line(e, f"writing {dest}")) from None
            failures.append(f"{mirror}: {_reason(e)}")
        except (ValueError, http.client.HTTPException) as e:
            failures.append(f"{mirror}: {_reason(e)}")
        finally:
            out.discard()
    tried = "; ".join(failures) if failures else "no mirrors configured"
    raise DataError(f"could not download {name} from any mirror ({tried}); "
                    "set MNIST_MIRROR to a directory or URL that holds the MNIST files")


def download(out_dir: Path, mirrors: list[str]) -> dict[str, str]:
    """Every file of FILES into out_dir; returns file -> where it came from."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep_stale(out_dir)
    return {name: download_file(name, md5, mirrors, out_dir) for name, md5 in FILES.items()}


# ---- IDX files -> tensors --------------------------------------------------------------------
def read_idx(path: Path, magic: int, count: int) -> np.ndarray:
    """Read one gzip'd IDX file, checking magic number, count, dimensions and length."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run the download stage first") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a complete gzip file ({e}); `dvc repro -f download` "
                        "fetches it again") from None
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


def prepare(raw_dir: Path, out: Outputs, out_file: Path = DATA_FILE) -> dict:
    """Parse the IDX files into {split}_images uint8 (N, 28, 28), {split}_labels int64 (N,) and
    the training images' pixel mean and std on the [0, 1] scale, saved to out_file."""
    data = {}
    for split in SPLITS:
        data[f"{split}_images"], data[f"{split}_labels"] = load_split(raw_dir, split)
    pixels = data["train_images"].double() / 255
    data["mean"], data["std"] = pixels.mean().item(), pixels.std().item()
    out.torch(out_file, data)
    return data


def _impossible(data: dict) -> str | None:
    """What in shape-correct prepared data cannot be MNIST: labels outside 0-9, images that are
    not bytes or are all one value, a pixel mean or std that is not a number in range."""
    if not all(isinstance(data.get(k), float) for k in ("mean", "std")):
        return "mean/std missing"
    if not (0 < data["std"] < 1 and 0 < data["mean"] < 1):
        return f"pixel mean {data['mean']!r} / std {data['std']!r} outside (0, 1)"
    for split in SPLITS:
        images, labels = data[f"{split}_images"], data[f"{split}_labels"]
        if images.dtype != torch.uint8 or labels.dtype != torch.int64:
            return f"{split} images must be uint8 and labels int64"
        if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) <= 9):
            return f"a {split} label of {int(labels.max()) if labels.max() > 9 else int(labels.min())}, " \
                   f"outside the digits 0-9"
        if len(images) and int(images.max()) == int(images.min()):
            return f"every {split} pixel is {int(images.min())}: no images in it"
    return None


def load_data(path: Path | str = DATA_FILE) -> dict:
    """The prepared tensors, checked: a damaged or foreign file is one line, not a traceback."""
    rebuild = "`dvc repro -f prepare` rebuilds it"
    try:
        data = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run `dvc repro prepare` first") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not the prepared data; remove it, then "
                        f"{rebuild}") from None
    except Exception as e:  # truncated zip, random bytes, an empty file, a foreign pickle
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:100]
        raise DataError(f"{path}: damaged or not this project's prepared data ({first}); "
                        f"{rebuild}") from None
    expected = {f"{split}_{kind}": (count, *shape)
                for split, (_, count) in SPLITS.items()
                for kind, shape in (("images", (SIDE, SIDE)), ("labels", ()))}
    problem = None
    if not isinstance(data, dict):
        problem = f"holds a {type(data).__name__}, not a dict of tensors"
    else:
        for key, shape in expected.items():
            value = data.get(key)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
                problem = f"{key} missing or not of shape {shape}"
                break
        else:
            problem = _impossible(data)
    if problem:
        raise DataError(f"{path}: not this project's prepared data ({problem}); {rebuild}")
    return data

"""download: the four canonical MNIST files, MD5-checked, mirrors tried in order.

    python -m stages.download [OUT_DIR]

Mirrors: `$MNIST_MIRROR` first when set (a directory, a file:// or an http(s) URL), then
`data.mirrors` from params.yaml. A file that is missing, unreachable, truncated or corrupt on one
mirror is fetched from the next; a file is renamed into place only once its MD5 matches.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from stages.config import load_params
from stages.errors import DataError, cli
from stages.io import atomic_path

RAW_DIR = Path("data/MNIST/raw")
FILES = {  # name -> MD5, the sums torchvision's datasets.MNIST checks
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CHUNK = 1 << 16
TIMEOUT_S = 30


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def mirror_list(configured: list[str] | tuple[str, ...]) -> list[str]:
    env = os.environ.get("MNIST_MIRROR", "").strip()
    return ([env] if env else []) + list(configured)


def _fetch(mirror: str, name: str, dest: Path) -> None:
    """Copy `name` from `mirror` (directory or URL) to `dest`; raise OSError/URLError on failure."""
    scheme = urllib.parse.urlparse(mirror).scheme
    if scheme in ("http", "https", "ftp"):
        url = mirror.rstrip("/") + "/" + name
        req = urllib.request.Request(url, headers={"User-Agent": "mnist-iterations"})
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp, open(dest, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            got = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=name, delay=1.0,
                      leave=False) as bar:
                for chunk in iter(lambda: resp.read(CHUNK), b""):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            if total is not None and got != total:
                raise OSError(f"truncated: got {got} of {total} bytes")
    else:
        src = Path(urllib.parse.urlparse(mirror).path if scheme == "file" else mirror) / name
        shutil.copyfile(src, dest)


def _reason(e: Exception) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"unreachable ({e.reason})"
    if isinstance(e, FileNotFoundError):
        return "no such file"
    return str(e) or type(e).__name__


def download_file(name: str, md5: str, mirrors: list[str], out_dir: Path) -> str:
    """Fetch one file into out_dir from the first mirror that serves it intact; return that mirror."""
    dest = out_dir / name
    if dest.exists() and md5sum(dest) == md5:
        return "already present"
    failures = []
    for mirror in mirrors:
        try:
            with atomic_path(dest) as tmp:
                _fetch(mirror, name, tmp)
                got = md5sum(tmp)
                if got != md5:
                    raise OSError(f"MD5 mismatch ({got}, expected {md5})")
            return mirror
        except (OSError, ValueError, http.client.HTTPException) as e:
            failures.append(f"{mirror}: {_reason(e)}")
    tried = "; ".join(failures) if failures else "no mirrors configured"
    raise DataError(f"could not download {name} from any mirror ({tried}); "
                    "set MNIST_MIRROR to a directory or URL that holds the MNIST files")


def download(out_dir: Path, mirrors: list[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, md5 in FILES.items():
        source = download_file(name, md5, mirrors, out_dir)
        print(f"{name:28s} ok  ({source})")


@cli
def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else RAW_DIR
    download(out_dir, mirror_list(load_params().mirrors))


if __name__ == "__main__":
    main()

"""download (mirrors, checksums, fallback) and prepare (IDX parsing) on good and bad files."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch

from conftest import write_idx
from mnist_iter.data import FILES, download, download_file, md5sum, mirror_list
from mnist_iter.cli import DataError
from mnist_iter.data import IMAGES_MAGIC, LABELS_MAGIC, load_split, prepare, read_idx
from mnist_iter.files import outputs

NAME = "t10k-labels-idx1-ubyte.gz"


# ---- IDX parsing --------------------------------------------------------------------------
def test_read_idx_good(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    got = read_idx(write_idx(tmp_path / "x.gz", images), IMAGES_MAGIC, 3)
    assert got.dtype == np.uint8 and (got == images).all()


def test_read_idx_wrong_magic(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.zeros((3, 28, 28)), magic=0x0D03)
    with pytest.raises(DataError, match="wrong magic number 0x00000d03, expected 0x00000803"):
        read_idx(path, IMAGES_MAGIC, 3)


def test_read_idx_truncated(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.zeros((3, 28, 28)))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match="data bytes, header promises 2352"):
        read_idx(path, IMAGES_MAGIC, 3)


def test_read_idx_truncated_gzip(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (30, 28, 28))
    path = write_idx(tmp_path / "x.gz", noise)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match="not a complete gzip file"):
        read_idx(path, IMAGES_MAGIC, 30)


def test_read_idx_wrong_dimensions(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.zeros((3, 32, 32)))
    with pytest.raises(DataError, match=r"dimensions \(3, 32, 32\), expected \(3, 28, 28\)"):
        read_idx(path, IMAGES_MAGIC, 3)


def test_image_and_label_counts_must_match(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((10_000, 28, 28)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(9_999))
    with pytest.raises(DataError, match=r"labels-idx1-ubyte.gz: dimensions \(9999,\), expected"):
        load_split(tmp_path, "test")


def test_failed_prepare_writes_nothing(tmp_path, mnist_dir):
    raw = tmp_path / "raw"
    shutil.copytree(mnist_dir, raw)
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    out = tmp_path / "mnist.pt"
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: not a complete gzip file"):
        with outputs() as files:
            prepare(raw, files, out)
    assert list(tmp_path.iterdir()) == [raw]


def test_header_only_file(tmp_path):
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"\x00\x00\x08"))
    with pytest.raises(DataError, match="too short for an IDX header"):
        read_idx(tmp_path / "x.gz", LABELS_MAGIC, 3)


# ---- the real files -----------------------------------------------------------------------
def test_real_checksums(mnist_dir):
    for name, md5 in FILES.items():
        assert md5sum(mnist_dir / name) == md5


def test_prepared_real_data(mnist_data):
    assert mnist_data["train_images"].shape == (60_000, 28, 28)
    assert mnist_data["test_images"].shape == (10_000, 28, 28)
    assert mnist_data["train_images"].dtype == torch.uint8
    assert mnist_data["train_labels"].dtype == torch.int64
    assert mnist_data["train_labels"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist_data["mean"] == pytest.approx(0.1307, abs=1e-4)
    assert mnist_data["std"] == pytest.approx(0.3081, abs=1e-4)


# ---- download: mirrors in order, checksums, no partial files --------------------------------
def test_mirror_env_comes_first(monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", "/somewhere")
    assert mirror_list(["http://a/"]) == ["/somewhere", "http://a/"]
    monkeypatch.delenv("MNIST_MIRROR")
    assert mirror_list(["http://a/"]) == ["http://a/"]


def test_corrupt_file_on_first_mirror_falls_back_to_second(tmp_path, mnist_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    data = bytearray((mnist_dir / NAME).read_bytes())
    data[100] ^= 0xFF
    (bad / NAME).write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    assert download_file(NAME, FILES[NAME], [str(bad), str(mnist_dir)], out) == str(mnist_dir)
    assert md5sum(out / NAME) == FILES[NAME]


def test_http_mirror_fallback(tmp_path, mnist_dir, http_mirror):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    mirrors = [http_mirror(empty), http_mirror(mnist_dir)]
    download(out, mirrors)  # every file: 404 on the first mirror, good on the second
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)


def test_all_mirrors_fail_names_each_and_leaves_nothing(tmp_path, http_mirror):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / NAME).write_bytes(b"not mnist")
    out = tmp_path / "out"
    out.mkdir()
    url = http_mirror(wrong)
    mirrors = [url, str(tmp_path / "missing"), "http://127.0.0.1:9/"]
    with pytest.raises(DataError) as err:
        download_file(NAME, FILES[NAME], mirrors, out)
    message = str(err.value)
    assert f"{url}: MD5 mismatch" in message
    assert f"{tmp_path / 'missing'}: no such file" in message
    assert "http://127.0.0.1:9/: unreachable" in message
    assert list(out.iterdir()) == []  # no partial or temporary file


def test_http_404_is_named(tmp_path, http_mirror):
    url = http_mirror(tmp_path)
    with pytest.raises(DataError, match="HTTP 404"):
        download_file(NAME, FILES[NAME], [url], tmp_path / "out")


def test_existing_good_file_is_kept(tmp_path, mnist_dir):
    shutil.copy(mnist_dir / NAME, tmp_path / NAME)
    assert download_file(NAME, FILES[NAME], [], tmp_path) == "already present"

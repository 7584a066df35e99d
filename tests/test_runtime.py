"""runtime.keep_freed_memory: big blocks come from malloc's heap and stay there when freed,
instead of being mapped and unmapped (and faulted in again) on every allocation."""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

import pytest
import torch

from mnist_iter.cli import keep_freed_memory

MIB = 1 << 20


class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def mallinfo2() -> Mallinfo2:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc < 2.33 has no mallinfo2")
    libc.mallinfo2.restype = Mallinfo2
    return libc.mallinfo2()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_big_blocks_stay_in_the_process():
    assert keep_freed_memory()
    mapped = mallinfo2().hblkhd  # bytes in blocks that malloc mapped on their own
    block = torch.empty(64 * MIB, dtype=torch.uint8)  # glibc's default maps anything > 32 MiB
    assert mallinfo2().hblkhd < mapped + 64 * MIB
    del block
    assert mallinfo2().fordblks >= 64 * MIB  # freed, and kept for the next batch

"""Process-wide runtime settings (kgrec.runtime)."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                           reason="the malloc settings are glibc's")

# In a fresh process: apply the settings (or not), allocate a 48 MiB tensor (above glibc's largest dynamic
# mmap threshold, 32 MiB, below kgrec's 64 MiB) and report whether glibc
# served it from mmap'd pages (mallinfo2's hblkhd) or from the heap, and whether it stays in the heap once freed.
PROBE = textwrap.dedent("""
    import ctypes, json, torch
    from kgrec.runtime import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    tuned = keep_freed_memory()
    before = libc.mallinfo2().hblkhd
    x = torch.empty(12 << 20, dtype=torch.float32)  # 48 MiB
    x.fill_(1.0)
    mapped = libc.mallinfo2().hblkhd - before
    del x
    print(json.dumps({"tuned": tuned, "mapped": mapped, "free_in_heap": libc.mallinfo2().fordblks,
                      "again": keep_freed_memory()}))
""")


def _probe(env_value: str | None) -> dict:
    env = dict(os.environ)
    env.pop("KGREC_MALLOC_TUNING", None)
    if env_value is not None:
        env["KGREC_MALLOC_TUNING"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_freed_training_buffers_stay_in_the_heap():
    """With the settings a 48 MiB buffer comes from the heap and stays there once freed (the next step
    reuses it without page faults); glibc's defaults map it from the kernel and unmap it on free."""
    tuned = _probe(None)
    assert tuned["tuned"] and tuned["again"]
    assert tuned["mapped"] == 0
    assert tuned["free_in_heap"] >= 48 << 20

    default = _probe("0")
    assert not default["tuned"] and not default["again"]
    assert default["mapped"] >= 48 << 20

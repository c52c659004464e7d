"""Where a process's resident memory is: /proc/PID/smaps summed by what each mapping is.

Anonymous mappings cannot be told apart by name (model weights, activations, frames, malloc's
thread arenas all look alike), so they are split by size instead: the mappings of 8 MiB and more
are a model's weights or a glibc arena heap; the rest are frames, decoder and Python buffers.
File mappings are grouped by the package that ships them (onnxruntime, OpenCV and its FFmpeg,
numpy and its OpenBLAS, Python, the rest).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

BIG_KB = 8 * 1024
GROUPS = (
    ("onnxruntime", "onnxruntime"),
    ("opencv_python", "OpenCV (+ FFmpeg, OpenBLAS)"),
    ("/cv2/", "OpenCV (+ FFmpeg, OpenBLAS)"),
    ("numpy", "numpy (+ OpenBLAS)"),
    ("cryptography", "cryptography + OpenSSL"),
    ("libcrypto", "cryptography + OpenSSL"),
    ("libssl", "cryptography + OpenSSL"),
    ("pydantic", "pydantic"),
    ("libpython", "Python and its other extension modules"),
    ("/python3", "Python and its other extension modules"),  # last: every site-packages path has it
)


def _group(path: str, rss_kb: int) -> str:
    if path == "[heap]":
        return "anonymous: main heap (Python objects, small allocations)"
    if path.startswith("[stack"):
        return "stacks"
    if not path or path.startswith("["):
        return "anonymous: mappings ≥ 8 MiB" if rss_kb >= BIG_KB else "anonymous: mappings < 8 MiB"
    for needle, name in GROUPS:
        if needle in path:
            return f"file: {name}"
    return "file: other libraries"


def breakdown(pid: int) -> list[tuple[str, float]]:
    """(group, MB) by size, then the total (equal to the VmRSS of the moment, give or take)."""
    totals: Counter[str] = Counter()
    path = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and not fields[0].endswith(":"):
            path = fields[5] if len(fields) > 5 else ""
        elif fields and fields[0] == "Rss:":
            totals[_group(path, int(fields[1]))] += int(fields[1])
    rows = [(name, kb / 1024) for name, kb in totals.most_common()]
    return [*rows, ("total", sum(totals.values()) / 1024)]

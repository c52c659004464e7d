"""Approach-level fusion: one descriptor for the frames of one approach, matched once.

A door sees a person in many frames; each frame's descriptor is the true one plus noise (pose,
blur, light). Averaging the L2-normalised descriptors of the approach's usable frames and
normalising again cancels part of that noise, so a resident whose single frames fall just beyond
`max_distance` (1.06–1.19 in issue 26's trial) is recognised by the approach, while a stranger's
frames average to a stranger. The fused descriptor is matched against every template of every
resident (`Matcher`: a resident's distance is the closest of their templates).

One approach, one face: a frame farther than `max_distance` from the first mean (another person
passing behind, a detector slip) is left out and the mean is taken again; fewer than `k` frames
left means the window holds no single face to fuse, and the caller falls back to the per-frame
rule. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def fuse(
    vectors: Sequence[np.ndarray], max_distance: float, min_frames: int
) -> tuple[np.ndarray, list[int]] | None:
    """(fused unit descriptor, indices of the frames used), or None when fewer than `min_frames`
    frames agree on one face."""
    if len(vectors) < min_frames:
        return None
    stack = np.vstack([unit(np.asarray(v, np.float32)) for v in vectors])
    mean = unit(stack.mean(axis=0))
    keep = [i for i, v in enumerate(stack) if float(np.linalg.norm(v - mean)) <= max_distance]
    if len(keep) < min_frames:
        return None
    if len(keep) < len(stack):
        mean = unit(stack[keep].mean(axis=0))
    return mean.astype(np.float32), keep

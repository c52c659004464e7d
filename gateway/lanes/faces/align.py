"""Alignment: a similarity transform (rotation, uniform scale, shift) that puts a face's five
landmarks where the embedder was trained to see them, and the chip warped with it.

The least-squares similarity (Umeyama, 1991) is used rather than an affine fit: an affine fit
would shear and stretch a face to the template, changing the very proportions that identify it.
"""

from __future__ import annotations

import cv2
import numpy as np


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 × 3 similarity transform mapping points `src` onto `dst` with least squared error."""
    src = src.astype(np.float64)
    dst = dst.astype(np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - src_mean, dst - dst_mean
    u, sigma, vt = np.linalg.svd(d0.T @ s0 / len(src))
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # a reflection is not a pose
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    variance = (s0**2).sum() / len(src)
    scale = float(np.trace(np.diag(sigma) @ sign) / variance) if variance > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def chip(image: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The aligned face chip (BGR, `size` = width, height) for landmarks found in `image`."""
    matrix = similarity(landmarks, template)
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

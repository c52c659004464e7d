"""Make the genuine door clips of bench/pad.py from LivePortrait's driving videos (kept, not run
by the bench or the tests: the clips it wrote are committed and pinned in SHA256SUMS).

    python tests/data/pad/genuine/convert.py /path/to/LivePortrait   # a checkout at COMMIT

Each source video (real people filmed by a phone or webcam, talking and pulling faces) is
sampled at 5 fps (the door's analysis rate) for up to SECONDS, and cut to a fixed square around
the face found in its middle frame, CROP_FACES face widths across, resized to SIDE pixels: the face
is then ~120 px wide, as the door scene shows one (FACE_PX 130 in 640×360). The camera does not
follow the face: the person moves within the square as they moved in front of the phone.
Written as MJPEG AVI (OpenCV reads it without FFmpeg), quality 85.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

COMMIT = "1986663be3b6902605d32200c01f4bfd36cda83d"  # KwaiVGI/LivePortrait
# adults only (d11 is a child); d0 is 3.1 s long
CLIPS = ("d0", "d3", "d6", "d9", "d10", "d12", "d13", "d14", "d18", "d19", "d20")
FPS = 5.0
SECONDS = 6.0
SIDE = 256
CROP_FACES = 2.6


def frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    rate = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out, i = [], 0
    while len(out) < SECONDS * FPS:
        ok, frame = cap.read()
        if not ok:
            break
        if i % round(rate / FPS) == 0:
            out.append(frame)
        i += 1
    return out


def square(image: np.ndarray) -> tuple[int, int, int]:
    """(x, y, side) of the crop around the largest face of a picture (OpenCV's own YuNet)."""
    from gateway.inference.catalog import catalog

    h, w = image.shape[:2]
    yunet = cv2.FaceDetectorYN.create(str(catalog()["yunet-2023mar"].file), "", (w, h), 0.6)
    _, faces = yunet.detect(image)
    if faces is None:
        raise SystemExit("no face in the middle frame")
    x, y, fw, fh = max(faces, key=lambda f: f[2] * f[3])[:4]
    side = min(int(CROP_FACES * fw), h, w)
    cx, cy = x + fw / 2, y + fh / 2
    left = int(min(max(cx - side / 2, 0), w - side))
    top = int(min(max(cy - side / 2, 0), h - side))
    return left, top, side


def main() -> None:
    source = Path(sys.argv[1]) / "assets" / "examples" / "driving"
    target = Path(__file__).parent
    for name in CLIPS:
        images = frames(source / f"{name}.mp4")
        x, y, side = square(images[len(images) // 2])
        path = target / f"{name}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (SIDE, SIDE))
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 85)
        for image in images:
            writer.write(
                cv2.resize(image[y : y + side, x : x + side], (SIDE, SIDE), interpolation=cv2.INTER_AREA)
            )
        writer.release()
        print(f"{path.name}: {len(images)} frames, crop {side} px at ({x}, {y})")


if __name__ == "__main__":
    main()

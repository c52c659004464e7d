"""A door camera's view, composited from real photographs: visitors step up to the door, stay a
few seconds and leave. Used by `lintel demo` (the lobby's face reader) and the face-access tests.

Each visit names a photograph and where the face is in it (fractions of the picture, measured
once by hand): the head and shoulders are cut out around it and shown at door distance (face
~130 px wide in 640×360, as a camera mounted at head height sees a person 60-80 cm away), drifting
a little as a person does. Between visits the hallway is empty.

How the face moves (`Visit.motion`):
- `still`: the photograph is moved rigidly (shift, lean closer/away): a printed photo held up to
  the camera. With `screen`, it is shown inside a phone's bezel (a photo on a phone screen).
- `live`: as a person does, the head turns a little from side to side (the nose moves against the
  eyes, as parallax does on a real head) and the mouth moves: a smooth local warp of the face, so
  the landmarks move non-rigidly (what `liveness = "micro_motion"` looks for).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from drivers.camera.scene import HEIGHT, WIDTH, write_mjpeg

FACE_PX = 130


@dataclass(frozen=True, slots=True)
class Visit:
    photo: Path
    face: tuple[float, float, float, float]  # x1, y1, x2, y2 of the face, fractions of the photo
    start_s: float
    end_s: float
    motion: str = "live"  # "live" (a person) or "still" (a photograph held to the camera)
    screen: bool = False  # a still photograph shown on a phone screen


# where the faces are in the registry photographs (scripts/fetch_media.sh)
FACE_BOXES = {
    "faces/obama.jpg": (0.406, 0.08, 0.673, 0.37),
    "faces/obama2.jpg": (0.323, 0.191, 0.763, 0.528),
    "faces/obama3.jpg": (0.449, 0.117, 0.634, 0.265),
    "faces/biden.jpg": (0.439, 0.079, 0.738, 0.262),
}


def hallway() -> np.ndarray:
    """An empty hallway: a lit wall, a floor, a door frame."""
    img = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    ramp = np.linspace(170, 120, HEIGHT, dtype=np.float32)[:, None]
    img[:] = np.dstack([ramp * 0.92, ramp * 0.95, ramp]).astype(np.uint8)
    img[290:] = (70, 80, 90)
    cv2.rectangle(img, (440, 40), (600, 290), (60, 70, 85), 6)
    cv2.circle(img, (585, 170), 6, (40, 150, 200), -1)
    return img


def _cutout(
    photo: np.ndarray, face: tuple[float, float, float, float]
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Head and shoulders around the face, scaled so the face is FACE_PX wide, and where the face
    box is in that cut-out (pixels)."""
    h, w = photo.shape[:2]
    x1, y1, x2, y2 = face[0] * w, face[1] * h, face[2] * w, face[3] * h
    fw, fh = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    box = (
        max(0, int(cx - 1.3 * fw)),
        max(0, int(y1 - 0.5 * fh)),
        min(w, int(cx + 1.3 * fw)),
        min(h, int(y2 + 0.9 * fh)),
    )
    crop = photo[box[1] : box[3], box[0] : box[2]]
    scale = FACE_PX / fw
    cut = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), max(1, int(crop.shape[0] * scale))))
    where = ((x1 - box[0]) * scale, (y1 - box[1]) * scale, (x2 - box[0]) * scale, (y2 - box[1]) * scale)
    return cut, where


def _live(cut: np.ndarray, face: tuple[float, float, float, float], t: float) -> np.ndarray:
    """The face at time t of a live visit: the nose region shifts sideways against the eyes (head
    turning ±~4 % of the face width) and the mouth region opens and closes, as smooth local warps."""
    x1, y1, x2, y2 = face
    fw, fh = x2 - x1, y2 - y1
    h, w = cut.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)

    def bump(cx: float, cy: float, sigma: float) -> np.ndarray:
        return np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)).astype(np.float32)

    nose = bump((x1 + x2) / 2, y1 + 0.55 * fh, 0.14 * fw)
    mouth = bump((x1 + x2) / 2, y1 + 0.8 * fh, 0.16 * fw)
    turn = 0.045 * fw * math.sin(2 * math.pi * t / 1.7)
    open_ = 0.03 * fh * math.sin(2 * math.pi * t / 1.1)
    map_x = xs - turn * nose
    map_y = ys - open_ * mouth
    return cv2.remap(cut, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _phone(cut: np.ndarray) -> np.ndarray:
    """The picture on a phone held up to the camera: a black bezel, a slightly bluish, brighter
    screen."""
    screen = cv2.convertScaleAbs(cut, alpha=0.9, beta=25)
    screen[:, :, 0] = np.clip(screen[:, :, 0].astype(np.int16) + 12, 0, 255).astype(np.uint8)
    return cv2.copyMakeBorder(screen, 18, 30, 10, 10, cv2.BORDER_CONSTANT, value=(20, 20, 20))


class DoorScene:
    def __init__(self, visits: list[Visit], total_s: float, fps: float = 5) -> None:
        self.visits = visits
        self.total_s = total_s
        self.fps = fps
        self.background = hallway()
        self.cutouts = []
        for v in visits:
            photo = cv2.imread(str(v.photo))
            if photo is None:
                raise FileNotFoundError(f"{v.photo}: not a readable photograph (run scripts/fetch_media.sh)")
            if v.motion not in ("live", "still"):
                raise ValueError(f"visit motion {v.motion!r}: expected 'live' or 'still'")
            self.cutouts.append(_cutout(photo, v.face))

    def frame(self, t: float) -> np.ndarray:
        img = self.background.copy()
        for visit, (cut, face) in zip(self.visits, self.cutouts, strict=True):
            if not visit.start_s <= t < visit.end_s:
                continue
            if visit.motion == "live":
                cut = _live(cut, face, t)
            elif visit.screen:
                cut = _phone(cut)
            # a person drifts a few pixels and leans a little closer and away
            k = 1.0 + 0.03 * math.sin(2 * math.pi * t / 2.3)
            part = cv2.resize(cut, (int(cut.shape[1] * k), int(cut.shape[0] * k)))
            dx = int(8 * math.sin(2 * math.pi * t / 3.1))
            x0 = WIDTH // 2 - 60 - part.shape[1] // 2 + dx
            y0 = 20
            xa, ya = max(0, x0), max(0, y0)
            xb, yb = min(WIDTH, x0 + part.shape[1]), min(HEIGHT, y0 + part.shape[0])
            img[ya:yb, xa:xb] = part[ya - y0 : yb - y0, xa - x0 : xb - x0]
        return img

    def write(self, path: Path) -> Path:
        """The whole scene as an MJPEG AVI (OpenCV writes and reads it without ffmpeg)."""
        count = round(self.total_s * self.fps)
        return write_mjpeg((self.frame(i / self.fps) for i in range(count)), path, self.fps)

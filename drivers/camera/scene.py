"""A simulated camera scene: real photographs composited into a fire-lane clip.

A car cut from a real photograph drives into a lane in front of a background, parks, a pedestrian
(also a real photograph) walks past in front of it, and the car drives away. The demo plays such a
clip through the real camera driver and detector; the tests use the same scene with scene time
known exactly, so the dwell the gateway reports can be checked against the truth.

Sprites are rectangles cut from the photographs, background included — crude, but the detector
sees real car and person pixels, not drawings.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 640, 360
# The lane, in normalised coordinates, that the scene's car parks in.
LANE = [[0.25, 0.70], [0.99, 0.70], [0.99, 0.99], [0.25, 0.99]]


@dataclass(frozen=True, slots=True)
class ScenePlan:
    """Scene times in seconds: the car drives in over [enter_s, park_s], stands until leave_s,
    drives off by gone_s; a person crosses in front over [walk_from_s, walk_to_s]."""

    enter_s: float = 2.0
    park_s: float = 6.0
    leave_s: float = 40.0
    gone_s: float = 43.0
    walk_from_s: float = 18.0
    walk_to_s: float = 26.0
    total_s: float = 60.0
    fps: float = 5.0


@dataclass(frozen=True, slots=True)
class Sprites:
    background: np.ndarray
    car: np.ndarray
    person: np.ndarray


def load_sprites(car_photo: Path, person_photo: Path, background: Path | None) -> Sprites:
    """Cut the car (the white pickup of Darknet's dog.jpg) and the person (Darknet's person.jpg).

    Without a background photograph a plain courtyard is drawn (the demo has no street picture).
    """
    car_src = cv2.imread(str(car_photo))
    person_src = cv2.imread(str(person_photo))
    if car_src is None or person_src is None:
        raise FileNotFoundError(f"cannot read {car_photo} or {person_photo}")
    car = car_src[70:180, 455:690]
    person = person_src[90:370, 178:275]
    if background is not None:
        bg = cv2.imread(str(background))
        if bg is None:
            raise FileNotFoundError(f"cannot read {background}")
        bg = cv2.resize(bg, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    else:
        bg = courtyard()
    car = cv2.resize(car, (230, round(230 * car.shape[0] / car.shape[1])), interpolation=cv2.INTER_AREA)
    person = cv2.resize(
        person, (round(190 * person.shape[1] / person.shape[0]), 190), interpolation=cv2.INTER_AREA
    )
    return Sprites(bg, car, person)


def courtyard() -> np.ndarray:
    """A drawn courtyard: building wall, windows, pavement, yellow fire-lane hatching."""
    img = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    img[:] = (170, 175, 180)
    img[: int(HEIGHT * 0.55)] = (150, 160, 190)
    for x in range(20, WIDTH, 80):
        for y in range(20, int(HEIGHT * 0.5) - 40, 60):
            cv2.rectangle(img, (x, y), (x + 40, y + 35), (110, 90, 70), -1)
    rng = np.random.default_rng(7)
    noise = rng.integers(-12, 12, size=(HEIGHT - int(HEIGHT * 0.55), WIDTH, 1))
    img[int(HEIGHT * 0.55) :] = np.clip(img[int(HEIGHT * 0.55) :].astype(int) + noise, 0, 255).astype(
        np.uint8
    )
    lane = (np.array(LANE) * [WIDTH, HEIGHT]).astype(np.int32)
    cv2.polylines(img, [lane], True, (0, 210, 240), 3)
    return img


def _paste(canvas: np.ndarray, sprite: np.ndarray, x: int, bottom: int) -> None:
    h, w = sprite.shape[:2]
    top = bottom - h
    x0, x1 = max(0, x), min(WIDTH, x + w)
    y0, y1 = max(0, top), min(HEIGHT, bottom)
    if x0 < x1 and y0 < y1:
        canvas[y0:y1, x0:x1] = sprite[y0 - top : y1 - top, x0 - x : x1 - x]


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * min(1.0, max(0.0, t))


class Scene:
    def __init__(self, sprites: Sprites, plan: ScenePlan = ScenePlan()) -> None:
        self.sprites = sprites
        self.plan = plan
        self.parked_x = round(WIDTH * 0.45)
        self.car_bottom = round(HEIGHT * 0.96)

    def car_x(self, t: float) -> int | None:
        p, w = self.plan, self.sprites.car.shape[1]
        if t < p.enter_s or t >= p.gone_s:
            return None
        if t < p.park_s:
            return round(_lerp(-w, self.parked_x, (t - p.enter_s) / (p.park_s - p.enter_s)))
        if t < p.leave_s:
            return self.parked_x
        return round(_lerp(self.parked_x, WIDTH + 10, (t - p.leave_s) / (p.gone_s - p.leave_s)))

    def render(self, t: float) -> np.ndarray:
        p = self.plan
        frame = self.sprites.background.copy()
        x = self.car_x(t)
        if x is not None:
            _paste(frame, self.sprites.car, x, self.car_bottom)
        if p.walk_from_s <= t < p.walk_to_s:
            px = round(
                _lerp(
                    WIDTH, -self.sprites.person.shape[1], (t - p.walk_from_s) / (p.walk_to_s - p.walk_from_s)
                )
            )
            _paste(frame, self.sprites.person, px, HEIGHT)
        return frame

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        count = round(self.plan.total_s * self.plan.fps)
        for i in range(count):
            t = i / self.plan.fps
            yield t, self.render(t)

    def write(self, path: Path, codec: str = "mjpeg") -> Path:
        """Write the clip: `h264` through Debian's ffmpeg (the OpenCV wheel cannot encode H.264),
        `mjpeg` (an .avi) through OpenCV alone."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if codec == "h264":
            ffmpeg = shutil.which("ffmpeg")
            if ffmpeg is None:
                raise FileNotFoundError("ffmpeg is not installed (apt-get install ffmpeg)")
            cmd = [
                ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                "-s", f"{WIDTH}x{HEIGHT}", "-r", str(self.plan.fps), "-i", "-",
                "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10", str(path),
            ]  # fmt: skip
            with subprocess.Popen(cmd, stdin=subprocess.PIPE) as proc:
                assert proc.stdin is not None
                for _, frame in self.frames():
                    proc.stdin.write(frame.tobytes())
                proc.stdin.close()
                if proc.wait() != 0:
                    raise OSError(f"ffmpeg failed with exit code {proc.returncode}")
            return path
        return write_mjpeg((frame for _, frame in self.frames()), path, self.plan.fps)


def write_mjpeg(frames: Iterable[np.ndarray], path: Path, fps: float) -> Path:
    """WIDTH×HEIGHT BGR frames as an MJPEG .avi, which OpenCV writes and reads without ffmpeg."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise OSError(f"cannot write {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path

"""Presentation-attack door clips (issue 26), composited from the registry photographs.

- **Animated photo**: one photograph of the resident (not the enrolled one), animated by the
  door scene's smooth local warp (the nose slides, the mouth opens) and shown on a phone screen.
- **Slideshow**: photographs of the resident other than the enrolled one, and their mirror
  images, shown one after another on a phone, 0.6 or 0.8 s each.
- **Replay of a genuine video** (`ReplayScene`): a clip of a real person (tests/data/pad/genuine)
  looped on a phone held to the camera, the bezel drifting as a hand does while the person in the
  clip moves within the screen.

Both are synthetic: the pixels of the medium (a screen's grid, moiré, glare) are not in them, so
the trained detector cannot see them; the temporal checks must (docs/face-calibration.md). A
clip holds a few approaches of one kind with an empty hallway between them, longer than the
decision rule's reset; the tests loop it (each loop shows the photos again, at other phases).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from drivers.camera import door_scene
from drivers.camera.door_scene import FACE_BOXES, DoorScene, Visit
from drivers.camera.scene import write_mjpeg
from tests.support.media import photo

SCENE_FPS = 5.0
ANIMATED = ("faces/obama2.jpg", "faces/obama3.jpg")  # the resident enrols with faces/obama.jpg
SLIDES = ("faces/obama2.jpg", "faces/obama3.jpg")


class AttackScene(DoorScene):
    """The door scene, where a `live` visit with `screen` is the warp shown on a phone (the door
    scene itself shows `screen` only for still photographs)."""

    def frame(self, t: float) -> np.ndarray:
        phones = [v for v in self.visits if v.motion == "live" and v.screen and v.start_s <= t < v.end_s]
        if not phones:
            return super().frame(t)
        saved = self.cutouts
        self.cutouts = [
            (door_scene._phone(door_scene._live(cut, face, t)), face) if v in phones else (cut, face)
            for v, (cut, face) in zip(self.visits, saved, strict=True)
        ]
        self.visits, visits = [v if v not in phones else _still(v) for v in self.visits], self.visits
        try:
            return super().frame(t)
        finally:
            self.cutouts, self.visits = saved, visits


class ReplayScene(DoorScene):
    """A genuine clip replayed on a phone held to the camera: at time t the clip's frame at t
    (looped at `fps`), cut about the face of its first frame (`face`, fractions of the clip's
    picture) as `DoorScene` cuts a photograph, in the phone's bezel, drifting as a hand does. The
    bezel moves rigidly with the hand; the face moves within it as the person in the clip moved."""

    def __init__(
        self,
        frames: list[np.ndarray],
        face: tuple[float, float, float, float],
        folder: Path,
        seconds: float,
        fps: float = SCENE_FPS,
    ) -> None:
        first = folder / f"replay-{id(frames)}.png"
        cv2.imwrite(str(first), frames[0])
        super().__init__([Visit(first, face, 0, seconds, "still", screen=True)], seconds, fps)
        self.clip, self.face = frames, face

    def frame(self, t: float) -> np.ndarray:
        self.cutouts = [door_scene._cutout(self.clip[int(t * self.fps) % len(self.clip)], self.face)]
        return super().frame(t)


def _still(visit: Visit) -> Visit:
    """The same visit, drawn as is (its picture already animated and framed)."""
    return Visit(visit.photo, visit.face, visit.start_s, visit.end_s, "still", screen=False)


def mirrored(name: str, folder: Path) -> tuple[Path, tuple[float, float, float, float]]:
    """The photograph flipped left-right, written to `folder`, and its face box."""
    target = folder / ("mirror-" + name.replace("/", "-"))
    image = cv2.imread(str(photo(name)))
    cv2.imwrite(str(target), image[:, ::-1])
    x1, y1, x2, y2 = FACE_BOXES[name]
    return target, (1 - x2, y1, 1 - x1, y2)


def slideshow(
    start: float, end: float, slides: list[tuple[Path, tuple[float, float, float, float]]]
) -> list[Visit]:
    visits, t, i = [], start, 0
    while t < end:
        hold = 0.6 if i % 2 else 0.8
        path, box = slides[i % len(slides)]
        visits.append(Visit(path, box, t, min(end, t + hold), "still", screen=True))
        t, i = t + hold, i + 1
    return visits


def attack_clip(
    path: Path,
    kind: str,
    presentations: int = 4,
    present_s: float = 4.0,
    gap_s: float = 2.6,
    first: int = 0,
    lead_s: float | None = None,
) -> Path:
    """`presentations` approaches of one kind ("animated_photo" or "slideshow"), a 5 fps clip.
    `first` rotates which photograph (or slide order) the first approach shows, and `lead_s`
    (default: half the gap) is the empty hallway before it: two cameras showing clips with other
    `first` and `lead_s` show other presentations at any moment."""
    slides = [(photo(n), FACE_BOXES[n]) for n in SLIDES] + [mirrored(n, path.parent) for n in SLIDES]
    visits: list[Visit] = []
    lead = gap_s / 2 if lead_s is None else lead_s
    t = lead
    for i in range(first, first + presentations):
        end = t + present_s
        if kind == "animated_photo":
            name = ANIMATED[i % len(ANIMATED)]
            visits.append(Visit(photo(name), FACE_BOXES[name], t, end, "live", screen=True))
        elif kind == "slideshow":
            visits += slideshow(t, end, slides[i % len(slides) :] + slides[: i % len(slides)])
        else:
            raise ValueError(f"attack kind {kind!r}: expected animated_photo or slideshow")
        t = end + gap_s
    # looped, the hallway between the last approach and the first stays `gap_s` long (or `lead`)
    scene = AttackScene(visits, total_s=t - gap_s + max(gap_s - lead, 0.0))
    count = round(scene.total_s * SCENE_FPS)
    return write_mjpeg((scene.frame(i / SCENE_FPS) for i in range(count)), path, SCENE_FPS)

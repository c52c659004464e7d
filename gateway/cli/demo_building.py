"""The demo building: a config of simulated devices, validated like an installer's file.

Later lanes add their simulators here (Modbus meters on a simulated bus, BLE door sensors,
cameras) so `lintel demo` always shows the whole gateway working without hardware. The devices
without cameras (the Modbus TCP gateway, the BLE sensors) live in `gateway.cli.demo_devices`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from gateway.cli.demo_devices import BLE_TEXT, modbus_text
from gateway.config import LoadedConfig, parse_config

log = logging.getLogger("lintel.demo")

MEDIA = Path(__file__).resolve().parents[2] / ".cache" / "media" / "darknet"


def demo_camera_text(state_dir: Path) -> str:
    """A simulated fire-lane camera: a looping clip (a real car photograph drives in, parks 44 s,
    a pedestrian passes, it leaves) played through the real camera driver and detector.

    The photographs come from Debian's darknet package (`scripts/fetch_media.sh`, run by set-up);
    without them the demo runs without a camera and says so.
    """
    from drivers.camera.scene import LANE, Scene, ScenePlan, load_sprites

    car, person = MEDIA / "dog.jpg", MEDIA / "person.jpg"
    if not (car.is_file() and person.is_file()):
        log.warning("demo: no fire-lane camera (%s missing: run scripts/fetch_media.sh)", car)
        return ""
    clip = state_dir / "demo-fire-lane.avi"
    if not clip.is_file():
        plan = ScenePlan(enter_s=2, park_s=6, leave_s=50, gone_s=53, walk_from_s=20, walk_to_s=26, total_s=65)
        state_dir.mkdir(parents=True, exist_ok=True)
        Scene(load_sprites(car, person, None), plan).write(clip)
    return f"""
[[sources]]
id = "cam-court"
type = "camera"
url = "{clip}"
loop = true

[[fire_lanes]]
id = "lane-court"
camera = "cam-court"
polygon = {LANE}
grace_s = 20
settle_s = 3
exit_delay_s = 6
"""


FACES = MEDIA.parent / "faces"
DEMO_RESIDENT = "r-demo-0412"


def demo_key_path(state_dir: Path) -> Path:
    """The demo's face gallery key: in a folder beside its state folder (`var/demo-keys/` for
    `var/demo`), never in it. A key in the folder that holds the gallery is what `lintel run`,
    `check-config` and `doctor` warn about (whoever copies the folder has both); the demo keeps the
    rule it teaches."""
    return state_dir.parent / f"{state_dir.name}-keys" / "faces.key"


def adopt_old_demo_key(state_dir: Path, key_path: Path) -> bool:
    """Move the key an older demo left in its state folder to `key_path`, so the gallery it
    encrypted stays readable; True when moved. Never overwrites a key already there."""
    old = state_dir / "faces.key"
    if key_path == old or not old.is_file() or key_path.exists():
        return False
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.replace(old, key_path)  # a sibling folder: the same file system, an atomic rename
    return True


def demo_face_text(state_dir: Path) -> str:
    """A simulated door camera at the lobby: the enrolled resident steps up (a different photograph
    of him than the one enrolled), leaves, then a stranger; looping. Runs the real face lane, which
    pulses the lobby relay of the simulated relay module."""
    from drivers.camera.door_scene import FACE_BOXES, DoorScene, Visit

    needed = ["faces/obama.jpg", "faces/obama2.jpg", "faces/biden.jpg"]
    if not all((MEDIA.parent / n).is_file() for n in needed):
        log.warning("demo: no face reader (%s missing: run scripts/fetch_media.sh)", FACES)
        return ""
    clip = state_dir / "demo-door.avi"
    if not clip.is_file():
        state_dir.mkdir(parents=True, exist_ok=True)
        visits = [
            Visit(MEDIA.parent / "faces/obama2.jpg", FACE_BOXES["faces/obama2.jpg"], 1, 7),
            Visit(MEDIA.parent / "faces/biden.jpg", FACE_BOXES["faces/biden.jpg"], 11, 16),
        ]
        DoorScene(visits, total_s=20).write(clip)
    return f"""
[faces]
key_file = "{demo_key_path(state_dir)}"

[[sources]]
id = "cam-lobby"
type = "camera"
url = "{clip}"
loop = true

[[face_access]]
id = "lobby-face"
camera = "cam-lobby"
door = "lobby"
cooldown_s = 15
# The demo's visitor is a composited photograph, animated: exactly what the default liveness
# ("model") refuses. The demo has no real camera, so its door judges motion only.
liveness = "micro_motion"
"""


def enrol_demo_resident(loaded: LoadedConfig) -> None:
    """Enrol the demo's resident (from a photograph the door clip does not show) once."""
    if not loaded.config.face_access:
        return
    from gateway.inference.catalog import ModelError, configured
    from gateway.inference.engine import InferenceEngine
    from gateway.lanes.faces.gallery import Gallery, Resident
    from gateway.lanes.faces.keys import face_paths
    from gateway.lanes.faces.pipeline import build_pipeline

    gallery_path, key_path = face_paths(loaded.config.faces, loaded.state_dir)
    adopt_old_demo_key(loaded.state_dir, key_path)
    gallery = Gallery(gallery_path, key_path, create=True)
    try:
        if gallery.resident(DEMO_RESIDENT) is not None:
            return
        try:
            pipeline = build_pipeline(
                loaded.config.faces, InferenceEngine(1), configured(loaded.config.inference)
            )
        except ModelError as exc:
            log.warning("demo: face models unavailable (%s)", exc)
            return
        import cv2

        image = cv2.imread(str(FACES / "obama.jpg"))
        if image is None:
            return
        probe = pipeline.analyse(image)
        if probe.vector is None or probe.quality is None:
            return
        resident = Resident(DEMO_RESIDENT, "3-1202", "resident", "demo enrolment", int(time.time() * 1000))
        gallery.enroll(resident, [probe.vector], pipeline.embedder.name, [probe.quality.metrics], 0)
    finally:
        gallery.close()


def demo_config_text(
    state_dir: Path,
    broker: str | None,
    modbus_port: int | None = None,
    *,
    site: str = "demo-court",
    gateway_id: str = "demo-gw",
    extra: str = "",
) -> str:
    """The demo's TOML. `site`/`gateway_id` name the building (several demos on one broker, as
    the fleet demo runs three); `extra` is appended as given (e.g. a `[commands]` table with an
    operator's key, more `[[rules]]`), and validated with the rest."""
    mqtt = ""
    if broker:
        mqtt = f"""
[mqtt]
url = "{broker}"
stats_interval_s = 10

# Home Assistant discovery beside the native schema: point a Home Assistant at the same broker.
[bridges.home_assistant]
enabled = true

# Sparkplug B 3.0 beside it (its own connection, client id ...-spb): point a Sparkplug host at it.
[bridges.sparkplug]
enabled = true
"""
    return f"""
[gateway]
id = "{gateway_id}"
site = "{site}"
state_dir = "{state_dir}"
runtime_dir = "{state_dir / "run"}"

[outbox]
max_mb = 64
min_free_disk_mb = 16
{mqtt}
{modbus_text(modbus_port) if modbus_port else ""}
{BLE_TEXT}
[[sources]]
id = "door-front"
type = "simulated"
profile = "door_sensor"
interval_s = 3.0
seed = 4
alarm_probability = 0.02

[[sources]]
id = "door-back"
type = "simulated"
profile = "door_sensor"
interval_s = 5.0
seed = 5
fail_after_polls = 20
{demo_camera_text(state_dir)}
{demo_face_text(state_dir) if modbus_port else ""}
{extra}"""


def demo_config(
    state_dir: Path,
    broker: str | None,
    modbus_port: int | None = None,
    *,
    write: bool = False,
    site: str = "demo-court",
    gateway_id: str = "demo-gw",
    extra: str = "",
) -> LoadedConfig:
    """The demo's config, validated. With `write`, also saved as `<state_dir>/config.toml` (see
    `demo_config_path`) so `lintel status -c var/demo/config.toml` and the other inspection tools
    can be pointed at the running demo; its paths are absolute, so it works from any directory."""
    text = demo_config_text(
        state_dir.resolve(), broker, modbus_port, site=site, gateway_id=gateway_id, extra=extra
    )
    loaded = parse_config(text.encode(), "demo", state_dir.resolve())
    if write:
        path = demo_config_path(state_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(
            f"# Written by `lintel demo`: the running demo's config, for `lintel status -c`.\n{text}"
        )
        tmp.replace(path)
    return loaded


def demo_config_path(state_dir: Path) -> Path:
    """Where `lintel demo` writes its config (the path as the user gave the state dir)."""
    return state_dir / "config.toml"

"""Installer tools on a real clip and the real model: snapshot, probe, models verify."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2

from drivers.camera.scene import LANE, Scene, ScenePlan, load_sprites
from gateway.inference.catalog import DEFAULT_MODEL_DIR
from tests.conftest import gateway_toml
from tests.support.media import photo
from tests.support.process import lintel_output


def config_with_camera(tmp_path: Path, extra: str = "") -> Path:
    background = photo("opencv-doc/building.jpg")
    sprites = load_sprites(photo("darknet/dog.jpg"), photo("darknet/person.jpg"), background)
    plan = ScenePlan(enter_s=0, park_s=0.01, leave_s=100, gone_s=101, walk_from_s=50, walk_to_s=51, total_s=3)
    clip = Scene(sprites, plan).write(tmp_path / "parked.avi")
    sources = f"""
[[sources]]
id = "cam-a"
type = "camera"
url = "{clip}"

[vision]
{extra}

[[fire_lanes]]
id = "lane-a"
camera = "cam-a"
polygon = {LANE}
"""
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(tmp_path / "state", sources=sources))
    return config


def test_snapshot_draws_the_lane_and_the_parked_car(tmp_path: Path) -> None:
    config = config_with_camera(tmp_path)
    out = tmp_path / "lane.png"
    result = lintel_output("camera", "snapshot", "cam-a", "--out", str(out), "-c", str(config), "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert [lane["lane"] for lane in body["lanes"]] == ["lane-a"]
    assert any(d["label"] in ("car", "truck") for d in body["detections"])
    picture = cv2.imread(str(out))
    assert picture.shape == (360, 640, 3)
    # The lane outline is drawn in the "absent" colour (green) along its top edge.
    y = round(LANE[0][1] * 360)
    row = picture[y - 1 : y + 2, 200:230].reshape(-1, 3)
    assert any(int(g) > 150 and int(r) < 150 for b, g, r in row)
    probe = lintel_output("camera", "probe", "cam-a", "--seconds", "0.5", "-c", str(config), "--json")
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout)["width"] == 640
    missing = lintel_output("camera", "snapshot", "cam-x", "--out", str(out), "-c", str(config))
    assert missing.returncode == 1 and "cameras: cam-a" in missing.stderr


def test_models_verify_and_a_corrupt_model_is_refused_with_the_fix(tmp_path: Path) -> None:
    config = config_with_camera(tmp_path)
    ok = lintel_output("models", "verify", "-c", str(config), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["models"][0]["state"] == "ok"
    bad_dir = tmp_path / "models"
    bad_dir.mkdir()
    shutil.copy(DEFAULT_MODEL_DIR / "yolov2-tiny-coco.onnx", bad_dir / "yolov2-tiny-coco.onnx")
    with (bad_dir / "yolov2-tiny-coco.onnx").open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    bad = config_with_camera(tmp_path, f'\n[inference]\nmodel_dir = "{bad_dir}"')
    result = lintel_output("models", "verify", "-c", str(bad))
    assert result.returncode == 1
    check = lintel_output("check-config", "-c", str(bad))
    assert check.returncode != 0
    assert "vision.detector" in check.stderr + check.stdout
    assert "python models/fetch.py" in (check.stderr + check.stdout).replace("\n", " ")

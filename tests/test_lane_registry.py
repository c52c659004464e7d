"""The lane registry is the one place that knows the lanes: each folder under gateway/lanes is in
it, each entry's section is a GatewayConfig field and its module offers what the runtime and
`lintel status` use; the generic reference check resolves what the entries declare."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.config.lane_registry import DOORS, LANES
from gateway.config.model import GatewayConfig
from gateway.core import ConfigError
from tests.conftest import gateway_toml
from tests.support.configs import door_toml, meter_bus_toml

ROOT = Path(__file__).resolve().parents[1]
SPECS = (DOORS, *LANES)


def test_every_lane_folder_has_one_registry_entry() -> None:
    folders = {p.parent.name for p in (ROOT / "gateway" / "lanes").glob("*/__init__.py")}
    registered = {spec.module.split(".")[2] for spec in SPECS}
    assert folders == registered
    assert len({spec.name for spec in SPECS}) == len(SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_an_entry_names_a_config_section_and_a_module_with_builder_report_and_render(spec: object) -> None:
    from gateway.config.lane_registry import LaneSpec

    assert isinstance(spec, LaneSpec)
    assert {spec.section, *spec.reads} <= set(GatewayConfig.model_fields)
    module = importlib.import_module(spec.module)
    builder = getattr(module, spec.build.partition(":")[2])
    params = inspect.signature(builder).parameters
    assert list(params)[1] == "deps"  # (its section, deps, *, the shared sections it reads)
    assert set(spec.reads) <= {p for p, v in params.items() if v.kind == v.KEYWORD_ONLY}
    assert callable(module.render) and isinstance(module.REPORT, type)
    assert spec.reload in ("rebuild", "tune", "restart") and bool(spec.tunable) == (spec.reload == "tune")


def problem(text: str) -> str:
    with pytest.raises(ConfigError) as refused:
        parse_config(text.encode(), "t.toml", Path("/tmp"))
    return str(refused.value.problems[0])


def test_ids_declared_by_different_lanes_clash_and_references_resolve_across_them(tmp_path: Path) -> None:
    bus = meter_bus_toml(5020)
    household = '\n[care]\n[[care.households]]\nid = "lobby"\nelectricity_meter = "m1"\n'
    assert problem(gateway_toml(tmp_path, sources=bus + door_toml() + household)) == (
        'care.households[0].id: household id is also used elsewhere (got "lobby"); '
        "expected an id not already used by doors[0].id"
    )
    entrance = '\n[[face_access]]\nid = "e1"\ncamera = "bus-1"\ndoor = "lobby"\n'
    assert problem(gateway_toml(tmp_path, sources=bus + door_toml() + entrance)).startswith(
        'face_access[0].camera: unknown camera (got "bus-1"); expected the id of a [[sources]] entry '
        "of type camera (none configured)"
    )
    parse_config(gateway_toml(tmp_path, sources=bus + door_toml()).encode(), "t.toml", tmp_path)

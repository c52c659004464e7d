"""Keys that moved (`[vision]` engine keys → `[inference]`; `[vision]`/`[care]` timezone →
`[gateway] timezone`): an installer's existing config keeps running, and every tool says where
the key goes now; two spellings that disagree are refused with both keys named (exit 78)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.core.errors import ConfigError
from tests.conftest import gateway_toml
from tests.support.process import lintel_output

OLD = """
[vision]
threads = 2
model_dir = "models/onnx"
timezone = "Asia/Shanghai"

[care]
timezone = "Asia/Shanghai"
"""


def test_old_keys_are_read_at_their_new_place_with_a_warning_naming_the_new_key(tmp_path: Path) -> None:
    config = parse_config(gateway_toml(tmp_path / "state", sources=OLD).encode()).config
    assert config.inference.threads == 2 and config.inference.model_dir == "models/onnx"
    assert config.gateway.timezone == "Asia/Shanghai"
    moved = {w.path: w.expected for w in config.renamed}
    assert moved == {
        "vision.threads": "inference.threads = 2 instead (and vision.threads removed)",
        "vision.model_dir": 'inference.model_dir = "models/onnx" instead (and vision.model_dir removed)',
        "vision.timezone": 'gateway.timezone = "Asia/Shanghai" instead (and vision.timezone removed)',
        "care.timezone": 'gateway.timezone = "Asia/Shanghai" instead (and care.timezone removed)',
    }


def test_new_keys_carry_no_warning(tmp_path: Path) -> None:
    text = gateway_toml(
        tmp_path / "state", gateway={"timezone": "Europe/Zurich"}, sources="\n[inference]\nthreads = 2\n"
    )
    config = parse_config(text.encode()).config
    assert config.gateway.timezone == "Europe/Zurich" and config.inference.threads == 2
    assert config.renamed == []


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("\n[inference]\nthreads = 1\n\n[vision]\nthreads = 2\n", ("vision.threads", "inference.threads")),
        (
            '\n[vision]\ntimezone = "Asia/Shanghai"\n\n[care]\ntimezone = "Europe/Zurich"\n',
            ("care.timezone", "vision.timezone"),
        ),
    ],
    ids=["old and new", "two old spellings"],
)
def test_two_spellings_that_disagree_are_refused_naming_both(
    tmp_path: Path, text: str, named: tuple[str, str]
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(gateway_toml(tmp_path / "state", sources=text).encode())
    (problem,) = refused.value.problems
    assert problem.path == named[0] and all(key in problem.message for key in named), problem
    assert problem.expected is not None and "one value" in problem.expected


def test_a_timezone_given_twice_alike_is_accepted_with_the_warning(tmp_path: Path) -> None:
    text = gateway_toml(tmp_path / "state", gateway={"timezone": "Asia/Shanghai"}, sources=OLD)
    config = parse_config(text.encode()).config
    assert config.gateway.timezone == "Asia/Shanghai"
    assert {"vision.timezone", "care.timezone"} <= {w.path for w in config.renamed}


def test_check_config_doctor_and_run_say_it_and_a_conflict_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "lintel.toml"
    config.write_text(gateway_toml(tmp_path / "state", sources=OLD))
    checked = lintel_output("check-config", "--json", "-c", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    warnings = json.loads(checked.stdout)["warnings"]
    assert any(w.startswith("vision.threads: this key moved to [inference] threads") for w in warnings), (
        warnings
    )
    assert any(w.startswith("care.timezone: this key moved to [gateway] timezone") for w in warnings), (
        warnings
    )
    doctor = lintel_output("doctor", "--json", "-c", str(config), "--timeout", "1")
    assert "config.vision.threads" in doctor.stdout, doctor.stdout
    config.write_text(
        gateway_toml(tmp_path / "state", sources=OLD.replace('"Asia/Shanghai"\n\n[care]', '"UTC"\n\n[care]'))
    )
    run = lintel_output("run", "-c", str(config))
    assert run.returncode == 78, run.stderr
    assert "vision.timezone" in run.stderr and "care.timezone" in run.stderr, run.stderr

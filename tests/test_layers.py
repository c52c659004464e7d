"""Layer rules from ARCHITECTURE.md, checked on the source: drivers import only `gateway.core`
from the gateway, and `gateway.core` imports no other gateway layer and no device library.
(import-linter checks the same in scripts/test.sh; this test also catches new gateway modules.)"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEVICE_LIBS = {"serial", "pymodbus", "bleak", "cv2", "onnxruntime", "paho"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_drivers_import_only_gateway_core() -> None:
    bad = {
        f"{p.relative_to(ROOT)}: {name}"
        for p in (ROOT / "drivers").rglob("*.py")
        for name in imports(p)
        if (name == "gateway" or name.startswith("gateway.")) and not name.startswith("gateway.core")
    }
    assert not bad, bad


def test_core_imports_no_other_layer_and_no_device_library() -> None:
    bad = {
        f"{p.relative_to(ROOT)}: {name}"
        for p in (ROOT / "gateway" / "core").rglob("*.py")
        for name in imports(p)
        if (name.startswith("gateway.") and not name.startswith("gateway.core"))
        or name.startswith("drivers")
        or name.split(".")[0] in DEVICE_LIBS
    }
    assert not bad, bad


def test_only_the_cli_parses_argv_and_only_the_runtime_installs_signal_handlers() -> None:
    for p in (ROOT / "gateway").rglob("*.py"):
        text = p.read_text()
        rel = p.relative_to(ROOT).as_posix()
        if "argparse" in text or "sys.argv" in text:
            assert rel.startswith("gateway/cli/"), rel
        if "add_signal_handler" in text or "signal.signal(" in text:
            assert rel in ("gateway/runtime/daemon.py", "gateway/cli/run.py"), rel

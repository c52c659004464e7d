"""The shape of the gateway package, checked on its import graph (grimp, which import-linter uses):
no import circle among gateway modules (a circle is a strongly connected set of two or more
modules: every import counts, including those under TYPE_CHECKING and inside functions), and no
loose module at the top of `gateway/` (every module lives in its layer's folder)."""

from __future__ import annotations

from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected sets of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the module count (a few hundred)
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def gateway_imports() -> dict[str, set[str]]:
    graph = grimp.build_graph("gateway")
    return {
        module: {m for m in graph.find_modules_directly_imported_by(module) if m.startswith("gateway")}
        for module in graph.modules
        if module.startswith("gateway")
    }


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [["a", "b", "c"]]


def test_no_import_circle_among_gateway_modules() -> None:
    graph = gateway_imports()
    assert len(graph) > 150  # the whole package was read
    assert circles(graph) == []


def test_gateway_has_no_loose_module_at_its_top() -> None:
    loose = sorted(p.name for p in (ROOT / "gateway").glob("*.py"))
    assert set(loose) <= {"__init__.py", "__main__.py"}, loose


def test_every_first_party_module_an_import_names_exists() -> None:
    """Lazy imports inside functions included (mypy's ignore_missing_imports would not say)."""
    import ast

    def exists(module: str) -> bool:
        path = ROOT.joinpath(*module.split("."))
        return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()

    missing = set()
    for tree in ("gateway", "drivers", "bench", "tests"):
        for p in (ROOT / tree).rglob("*.py"):
            for node in ast.walk(ast.parse(p.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                for name in names:
                    if name.split(".")[0] in ("gateway", "drivers") and not exists(name):
                        missing.add(f"{p.relative_to(ROOT)}: {name}")
    assert not missing, sorted(missing)

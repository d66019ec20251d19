"""No import circle among `indextts_dist.*` modules, and the package format imports no model code.

The graph is read from the source with `ast`, so a circle is found whichever module is imported
first (a circle only breaks for some entry points). Every `import` counts, function-local ones too
(a lazy import hides a circle, it does not remove it); only `if TYPE_CHECKING:` blocks are left out,
since they never run. Importing `a.b.c` runs `a.b/__init__` first, so an import also depends on the
packages above its target (except the importer's own, which are already running).
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "indextts_dist"

MODEL_CODE = ("model", "lora", "generate", "text", "speech", "inference")
"""What the package format (`tracking/package.py`) must not import: it owns files, not models."""


def module_names(src: Path, root: str) -> dict[str, Path]:
    """Dotted name -> file, for every module and package under `src/root`."""
    names = {}
    for path in sorted((src / root).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, outside `if TYPE_CHECKING:` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `module` runs when imported (directly, or through a parent package)."""
    is_package = path.name == "__init__.py"
    targets: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        target = _resolve(module, is_package, node)
        targets.add(target)
        targets.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known)
    own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1 + is_package)}
    deps = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name in known and name not in own and name != module:
                deps.add(name)
    return deps


def import_graph(src: Path, root: str) -> dict[str, set[str]]:
    modules = module_names(src, root)
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One representative circle per strongly connected component with more than one module
    (Tarjan), each as a path `a -> b -> ... -> a`."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_circle_in(graph, component) for component in components]


def _circle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest circle through the component's first module (breadth-first inside it)."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for dep in sorted(graph[node] & component):
                if dep == start:
                    return [*paths[node], start]
                if dep not in paths:
                    paths[dep] = [*paths[node], dep]
                    nxt.append(dep)
        frontier = nxt
    raise AssertionError(f"no circle through {start} in {sorted(component)}")


def test_no_import_circle_in_the_project() -> None:
    graph = import_graph(SRC, ROOT)
    assert len(graph) > 50  # the walk really saw the project
    cycles = find_cycles(graph)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_every_module_imports() -> None:
    """Each module imports in this process (a broken or circular import fails here by name)."""
    failed = {}
    for name in module_names(SRC, ROOT):
        try:
            importlib.import_module(name)
        except Exception as exc:  # report every module, not just the first
            failed[name] = f"{type(exc).__name__}: {exc}"
    assert not failed, failed


def test_the_package_format_imports_no_model_code() -> None:
    graph = import_graph(SRC, ROOT)
    package = graph[f"{ROOT}.tracking.package"]
    forbidden = sorted(m for m in package if m.split(".")[1] in MODEL_CODE)
    assert not forbidden, forbidden


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_function_local_circle_is_found(tmp_path: Path) -> None:
    """The shape of the old `inference/speech_output.py` <-> `inference/synthesize.py` circle: one
    side imports at the top, the other inside a method."""
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/inference/__init__.py": "",
            "pkg/inference/speech_output.py": "from .synthesize import Synthesis\n",
            "pkg/inference/synthesize.py": (
                "class Synthesis: ...\n\n"
                "def speak():\n"
                "    from .speech_output import SpeechRenderer\n"
                "    return SpeechRenderer\n"
            ),
        },
    )
    assert find_cycles(import_graph(tmp_path, "pkg")) == [
        ["pkg.inference.speech_output", "pkg.inference.synthesize", "pkg.inference.speech_output"]
    ]


@pytest.mark.parametrize(
    ("files", "circle"),
    [
        pytest.param(  # a package __init__ re-exporting from a module that imports back through it
            {
                "pkg/__init__.py": "",
                "pkg/a/__init__.py": "from .impl import thing\n",
                "pkg/a/impl.py": "from ..b import helper\nthing = helper\n",
                "pkg/b.py": "from .a.other import x\nhelper = 1\n",
                "pkg/a/other.py": "x = 1\n",
            },
            ["pkg.a", "pkg.a.impl", "pkg.b", "pkg.a"],
            id="through-parent-package",
        ),
        pytest.param(
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "import pkg.b\n",
                "pkg/b.py": "from pkg import a\n",
            },
            ["pkg.a", "pkg.b", "pkg.a"],
            id="absolute-imports",
        ),
    ],
)
def test_other_circle_shapes_are_found(tmp_path: Path, files: dict[str, str], circle: list[str]) -> None:
    _write(tmp_path, files)
    assert find_cycles(import_graph(tmp_path, "pkg")) == [circle]


def test_type_checking_imports_and_own_parents_are_not_circles(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from .a import A\n",  # a package re-exporting its module is fine
            "pkg/a.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\nclass A: ...\n"
            ),
            "pkg/b.py": "from .a import A\nclass B(A): ...\n",
        },
    )
    assert find_cycles(import_graph(tmp_path, "pkg")) == []


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


LAYERS = {
    "tracking.package": MODEL_CODE,  # the package format: files, not models
    "train": {"preprocess", "speech"},  # train reads the dataset contract, never raw audio
    "model": {"train", "tracking", "inference"},
    "speech": {"train", "tracking", "inference"},
    "conditioning": {"model", "train", "tracking", "inference", "preprocess"},
    "dataset": {"model", "train", "tracking", "inference", "preprocess"},
}
"""Module (or package) -> top-level packages it must not reach, directly or through others."""


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_reach_only_what_they_may(layer: str) -> None:
    graph = import_graph(SRC, ROOT)
    starts = [m for m in graph if m == f"{ROOT}.{layer}" or m.startswith(f"{ROOT}.{layer}.")]
    assert starts, layer
    bad = {}
    for start in starts:
        reached = _reachable(graph, start)
        hits = sorted(m for m in reached if len(m.split(".")) > 1 and m.split(".")[1] in LAYERS[layer])
        if hits:
            bad[start] = hits[:4]
    assert not bad, bad

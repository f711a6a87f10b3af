"""Check the import graph of src/facta: no cycles, backends kept behind their interface, no
reaching into another module's private names.

Usage: ``python tools/check_imports.py`` (from anywhere; ``--root DIR`` checks
``DIR/src/facta`` instead). Prints each problem as ``path:line: message`` and exits 1 if there
is any. Standard library only (``ast``): nothing is imported or run.

The graph has one node per module, a package being its ``__init__.py``. An import is an
edge to the module it names: ``from facta.x import y`` goes to ``facta.x.y`` if that is a
module, else to ``facta.x``; ``importlib.import_module("facta.x")`` with a literal name counts
too. Imports inside functions count like those at module level.

1. **Cycles**: no two modules may import each other, directly or through others. Imports
   under ``if TYPE_CHECKING:`` never run and are left out of this check.
2. **Backends behind the interface**: modules under ``facta/projections/``, ``facta/cli/``,
   ``facta/testing/``, ``facta/checking*`` and ``facta/check_report.py`` may not import a
   concrete backend (``facta.backends.memory``, ``.sqlite``, ``.postgres``, their submodules
   and ``sqlite_*``/``postgres_*`` siblings), not even under ``TYPE_CHECKING``: they go
   through ``facta.recorder*``, ``facta.records`` and ``facta.backends`` (the discovery).
3. **Private names** (``_x``, not dunders) stay in their module. Heuristic, by name only:
   ``from facta.m import _x``; importing a private module (``facta.p._m``) from outside its
   package ``facta.p``; ``name._x`` where ``name`` was imported from facta (a module or one of
   its objects; NamedTuple's ``_replace``/``_asdict``/``_fields``/``_make`` are public); and
   ``store._x`` / ``recorder._x`` (also ``self._store._x``, ``x.recorder._x``, ...) outside
   ``facta/backends/`` and the modules defining the store and the recorder. ``self._x`` is
   never flagged: whose object ``x`` is cannot be told without types.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "facta"

LAYERED = re.compile(
    r"facta\.(projections|cli|testing)(\..+)?$|facta\.checking\w*$|facta\.check_report$"
)
CONCRETE = re.compile(r"facta\.backends\.(memory|sqlite|postgres)(_\w+)?(\..+)?$")
OWNS_STORE = re.compile(r"facta\.backends(\..+)?$|facta\.(store|recorder)(_async)?$")
STORE_NAMES = {"store", "recorder"}
PUBLIC_UNDERSCORED = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


@dataclass(frozen=True)
class Import:
    """One edge of the graph: ``module`` imports ``target`` at ``line``."""

    module: str
    target: str
    line: int
    type_only: bool


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def find_modules(src: Path) -> dict[str, Path]:
    """Every module under ``src/facta`` by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


class ModuleVisitor(ast.NodeVisitor):
    """Collects one module's imports, the names they bind, and its private accesses."""

    def __init__(self, name: str, is_package: bool, modules: dict[str, Path]) -> None:
        self.name, self.modules = name, modules
        self.package = name if is_package else name.rpartition(".")[0]
        self.imports: list[Import] = []
        self.bound: dict[str, str] = {}  # local name -> what it was imported as (dotted)
        self.private_uses: list[tuple[int, str]] = []  # (line, message)
        self.attribute_uses: list[ast.Attribute] = []
        self.type_only = 0

    def known(self, dotted: str) -> str | None:
        """The module ``dotted`` is in: itself, or the longest known module it starts with."""
        while dotted:
            if dotted in self.modules:
                return dotted
            dotted = dotted.rpartition(".")[0]
        return None

    def edge(self, target: str, line: int) -> None:
        found = self.known(target)
        if found is not None and found != self.name:
            self.imports.append(Import(self.name, found, line, self.type_only > 0))

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        guarded = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )
        if not guarded:
            self.generic_visit(node)
            return
        self.visit(node.test)
        self.type_only += 1
        for statement in node.body:
            self.visit(statement)
        self.type_only -= 1
        for statement in node.orelse:
            self.visit(statement)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] != PACKAGE:
                continue
            self.edge(alias.name, node.lineno)
            self.check_private_module(alias.name, node.lineno)
            if alias.asname:
                self.bound[alias.asname] = alias.name
            else:
                self.bound[alias.name.split(".")[0]] = alias.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        if base.split(".")[0] != PACKAGE:
            return
        for alias in node.names:
            full = f"{base}.{alias.name}"
            if full in self.modules:
                self.edge(full, node.lineno)
                self.check_private_module(full, node.lineno)
            else:
                self.edge(base, node.lineno)
                self.check_private_module(base, node.lineno)
                if is_private(alias.name) and self.known(base) != self.name:
                    self.private_uses.append(
                        (node.lineno, f"imports private name {alias.name} of {base}")
                    )
            if alias.name != "*":
                self.bound[alias.asname or alias.name] = full

    def check_private_module(self, dotted: str, line: int) -> None:
        """A private module (``facta.p._m``) is for its own package ``facta.p`` only."""
        parts = dotted.split(".")
        for index, part in enumerate(parts):
            owner = ".".join(parts[:index])
            if is_private(part) and not (self.name == owner or self.name.startswith(owner + ".")):
                self.private_uses.append((line, f"imports {dotted}, private to package {owner}"))
                return

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        if name == "import_module" and node.args:
            first = node.args[0]
            if (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and first.value.split(".")[0] == PACKAGE
            ):
                self.edge(first.value, node.lineno)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if is_private(node.attr) and node.attr not in PUBLIC_UNDERSCORED:
            self.attribute_uses.append(node)
        self.generic_visit(node)

    def private_attributes(self) -> Iterator[tuple[int, str]]:
        """``name._x`` on an imported facta name; ``store._x`` / ``recorder._x``."""
        outside_backends = not OWNS_STORE.match(self.name)
        for node in self.attribute_uses:
            value = node.value
            root = value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in self.bound:
                owner = dotted_name(value, self.bound)
                if owner is not None and self.known(owner) != self.name:
                    yield node.lineno, f"uses private {node.attr} of {owner}"
                    continue
            held = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", "")
            if outside_backends and held.lstrip("_") in STORE_NAMES:
                yield node.lineno, f"uses private {node.attr} of a {held.lstrip('_')}"


def dotted_name(node: ast.expr, bound: dict[str, str]) -> str | None:
    """``a.b.c`` with ``a`` replaced by what it was imported as; None if not a plain chain."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in bound:
        return None
    return ".".join([bound[node.id], *reversed(parts)])


def check(root: Path) -> tuple[list[Problem], int, int]:
    """Every problem of the package under ``root/src``, the number of modules and imports."""
    src = root / "src"
    modules = find_modules(src)
    imports: list[Import] = []
    problems: list[Problem] = []
    for name, path in modules.items():
        shown = path.relative_to(root).as_posix()
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except SyntaxError as e:
            problems.append(Problem(shown, e.lineno or 0, f"does not parse: {e.msg}"))
            continue
        visitor = ModuleVisitor(name, path.name == "__init__.py", modules)
        visitor.visit(tree)
        imports += visitor.imports
        for line, message in [*visitor.private_uses, *visitor.private_attributes()]:
            problems.append(Problem(shown, line, message))
        for edge in visitor.imports:
            if LAYERED.match(name) and CONCRETE.match(edge.target):
                problems.append(
                    Problem(
                        shown,
                        edge.line,
                        f"{name} imports the concrete backend {edge.target}; go through "
                        "facta.recorder*, facta.records or facta.backends",
                    )
                )
    problems += cycles(imports, modules, root)
    problems.sort(key=lambda p: (p.path, p.line, p.message))
    return problems, len(modules), len(imports)


def cycles(imports: list[Import], modules: dict[str, Path], root: Path) -> list[Problem]:
    """One problem per import cycle (a strongly connected group of modules), showing a loop."""
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for edge in imports:
        if not edge.type_only:
            graph[edge.module].setdefault(edge.target, edge.line)
    problems = []
    for group in strongly_connected(graph):
        if len(group) < 2:
            continue
        loop = shortest_loop(min(group), graph, group)
        steps = [
            f"{modules[a].relative_to(root).as_posix()}:{graph[a][b]} ({a} -> {b})"
            for a, b in itertools.pairwise(loop)
        ]
        others = sorted(group - set(loop))
        also = f" (also in the cycle: {', '.join(others)})" if others else ""
        first = loop[0]
        problems.append(
            Problem(
                modules[first].relative_to(root).as_posix(),
                graph[first][loop[1]],
                f"import cycle {' -> '.join(loop)}{also}: " + "; ".join(steps),
            )
        )
    return problems


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on deep graphs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return groups


def shortest_loop(start: str, graph: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    """The shortest path from ``start`` back to itself inside ``group`` (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in group:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start, start]  # not reached: a group of two or more always loops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository to check")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / "src" / PACKAGE).is_dir():
        print(f"check_imports: no src/{PACKAGE} under {root}", file=sys.stderr)
        return 2
    problems, modules, imports = check(root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_imports: {len(problems)} problem(s) in {modules} modules", file=sys.stderr)
        return 1
    print(f"check_imports: {modules} modules, {imports} imports, no cycle or layer problem")
    return 0


if __name__ == "__main__":
    sys.exit(main())

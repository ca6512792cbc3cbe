"""The modules of ``ffneuro`` and its CLI import one another without a cycle, read statically (ast).

Rules of the graph (what counts as an edge, so that a cycle found is a real one):

* Nodes are the project's modules: every ``.py`` under ``ffneuro/`` and under ``cli/`` (installed as
  ``ffneuro.cli``); a package is its ``__init__`` module.
* Every ``import`` and ``from ... import`` counts, wherever it stands: at the top, inside a function
  (an import hidden in a function still ties the two modules together), under ``try``. Only imports
  under ``if TYPE_CHECKING:`` are left out: they are never executed and serve annotations only.
  Relative imports are resolved against the importing module's package.
* ``import a.b.c`` is an edge to ``a.b.c``; ``from p import x`` is an edge to the submodule ``p.x``
  when ``x`` is one (so ``from . import x`` in a package's modules is an edge to the sibling ``x``,
  not to the package), and otherwise to ``p`` itself, the module or package ``__init__`` that defines
  or re-exports ``x``. A package ``__init__`` that imports or re-exports its submodules so has edges
  to them.
* Importing a submodule also runs its parent packages' ``__init__``; that implicit step is not an
  edge (with it, every package that re-exports a child would close a cycle with that child). A module
  that imports a *name* from its own parent package's ``__init__`` (``from . import NAME``, ``from
  ffneuro.units import NAME`` inside ``ffneuro/units/``) is an edge to the package, and, when that
  ``__init__`` imports the module back, a cycle: a real one, which works only while the ``__init__``
  happens to define ``NAME`` first.
* Edges leave and enter project modules only (torch, numpy, ... are not nodes).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"ffneuro": ROOT / "ffneuro", "ffneuro.cli": ROOT / "cli"}


def project_modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (its file, whether it is a package ``__init__``)."""
    modules = {}
    for prefix, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join((prefix, *(parts[:-1] if is_package else parts)))
            if prefix == "ffneuro" and name.startswith("ffneuro.cli"):
                continue   # no such folder; ffneuro.cli is cli/
            modules[name] = (path, is_package)
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node, at any depth, except in the body of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node):
            children = node.orelse
        stack.extend(children)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, by the rules in this file's docstring."""
    modules = project_modules()

    def owner(name: str) -> str | None:
        """``name`` if it is a project module, else its longest prefix that is one (``ffneuro.x.attr``)."""
        while name:
            if name in modules:
                return name
            name = name.rpartition(".")[0]
        return None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        edges = graph.setdefault(name, set())
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [owner(alias.name) for alias in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else owner(source)
                           for a in node.names]
            edges.update(t for t in targets if t is not None and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [m1, m2, ..., m1], or None (depth-first search, white/grey/black)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_project_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_graph_sees_imports_inside_functions_and_resolves_relative_ones():
    """The rules at work on known edges, so an empty graph cannot pass the test above."""
    graph = import_graph()
    assert "ffneuro.errors" in graph["ffneuro.config"]                        # from .errors import ...
    assert "ffneuro.profiler.sparsity" in graph["ffneuro.train.trainer"]      # inside a function
    assert "ffneuro.goodness.losses" in graph["ffneuro.goodness"]             # a package re-exporting a child
    assert "ffneuro.cli.options" in graph["ffneuro.cli.profile"]              # cli/ is ffneuro.cli
    assert "ffneuro.profiler.hardware.parse" in graph["ffneuro.profiler.hardware"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]

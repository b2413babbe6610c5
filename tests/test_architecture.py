"""What imports what between rudikit's top-level packages and modules (config, data, features,
models, evaluation, fairness, explain, run, store, reports, service, monitoring, cli, and the
top-level modules such as project and pipeline).

Packages import downward only (../shared/DESIGN.md): an import cycle between two of them means
neither can be understood, tested or moved without the other. The graph is read with ``ast``
from the source, counting every import in a file, also those inside functions (a lazy import is
still a dependency).
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rudikit"

Graph = dict[str, dict[str, list[str]]]  # importer -> imported -> ["file:line", ...]


def _node(path: Path) -> str:
    """The top-level package or module a source file belongs to."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def import_graph() -> Graph:
    """Edges between the top-level nodes of rudikit, each with the imports that make it."""
    files = [p for p in sorted(PACKAGE.rglob("*.py")) if p != PACKAGE / "__init__.py"]
    nodes = {_node(p) for p in files}
    graph: Graph = {node: {} for node in nodes}
    for path in files:
        source = _node(path)
        for statement in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(statement, ast.Import):
                names = [alias.name for alias in statement.names]
            elif isinstance(statement, ast.ImportFrom):
                assert not statement.level, \
                    f"{path}:{statement.lineno}: a relative import; rudikit uses absolute ones"
                # `from rudikit import project` names the module in the alias
                names = [statement.module or ""] + [f"{statement.module}.{alias.name}"
                                                    for alias in statement.names]
            else:
                continue
            where = f"{path.relative_to(PACKAGE)}:{statement.lineno}"
            for target in {n.split(".")[1] for n in names
                           if n.startswith("rudikit.") and n.split(".")[1] in nodes}:
                if target != source:
                    graph[source].setdefault(target, []).append(where)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The groups of nodes that import each other (strongly connected components with more
    than one node, by Tarjan's algorithm), each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def shortest_cycle(graph: Graph, node: str) -> list[str]:
    """The shortest import path from ``node`` back to itself (``[node, ..., node]``)."""
    previous: dict[str, str] = {}
    queue = deque([node])
    while queue:
        current = queue.popleft()
        for target in sorted(graph[current]):
            if target == node:
                steps = [current]
                while steps[-1] != node:
                    steps.append(previous[steps[-1]])
                return [*steps[::-1], node]
            if target not in previous:
                previous[target] = current
                queue.append(target)
    return []


def describe(graph: Graph, component: list[str]) -> str:
    """The members of one cycle, a shortest cycle through each, and every import inside it."""
    members = set(component)
    loops = sorted({" -> ".join(shortest_cycle(graph, node)) for node in component})
    edges = [f"    {a} -> {b}: {', '.join(graph[a][b])}"
             for a in component for b in sorted(members & set(graph[a]))]
    return "\n".join([f"{', '.join(component)} import each other, e.g.",
                      *(f"    {loop}" for loop in loops), "  through", *edges])


def test_no_import_cycle_between_top_level_packages() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles between rudikit's top-level packages:\n" + "\n".join(
        describe(graph, component) for component in found)


def test_the_cycle_finder_names_every_cycle() -> None:
    graph: Graph = {"a": {"b": ["a.py:1"]}, "b": {"c": ["b.py:2"]}, "c": {"a": ["c.py:3"]},
                    "d": {"e": ["d.py:1"]}, "e": {"d": ["e.py:1"]}, "f": {"a": ["f.py:1"]}}
    assert cycles(graph) == [["a", "b", "c"], ["d", "e"]]
    assert shortest_cycle(graph, "b") == ["b", "c", "a", "b"]
    assert shortest_cycle(graph, "f") == []
    assert describe(graph, ["d", "e"]).splitlines() == [
        "d, e import each other, e.g.", "    d -> e -> d", "    e -> d -> e", "  through",
        "    d -> e: d.py:1", "    e -> d: e.py:1"]
    assert cycles({"a": {"b": ["x"]}, "b": {}}) == []


# Who must not import whom (../shared/DESIGN.md: config -> data -> features -> models,
# evaluation, fairness -> run -> reports, service, monitoring -> cli), for the parts that
# already keep to it: importer -> the top-level packages and modules it must never import, not
# even lazily inside a function. The run engine is given the function that writes a run's
# report and cards (`rudi run` passes it), so run imports nothing above it; reports read only
# the store. Within one tier (models, evaluation, fairness, explain; reports, service,
# monitoring) imports go one way only, which the cycle test above checks.
RUN_AND_ABOVE = {"run", "reports", "service", "monitoring", "cli"}
FORBIDDEN = {
    "config": RUN_AND_ABOVE | {"data", "features", "models", "evaluation", "fairness", "explain",
                               "store"},
    "data": RUN_AND_ABOVE | {"features", "models", "evaluation", "fairness", "explain"},
    "features": RUN_AND_ABOVE | {"models", "evaluation", "fairness", "explain"},
    "models": RUN_AND_ABOVE,
    "evaluation": RUN_AND_ABOVE,
    "fairness": RUN_AND_ABOVE,
    "explain": RUN_AND_ABOVE,
    "store": RUN_AND_ABOVE,
    "run": RUN_AND_ABOVE - {"run"},
    "reports": {"run", "service", "monitoring", "cli"},
    "service": {"monitoring", "cli"},
}


def test_packages_import_only_downward_where_they_already_do() -> None:
    graph = import_graph()
    wrong = [f"{a} -> {b}: {', '.join(graph[a][b])}"
             for a, banned in FORBIDDEN.items() if a in graph
             for b in sorted(banned & set(graph[a]))]
    assert not wrong, "imports against the layering (see ../shared/DESIGN.md):\n" + "\n".join(
        wrong)


def test_nothing_imports_the_command_line() -> None:
    """cli/ is the top: commands call the library, never the other way round."""
    graph = import_graph()
    assert "cli" in graph
    importers = {a: where["cli"] for a, where in graph.items() if "cli" in where}
    assert not importers, f"the command line is imported by {importers}"

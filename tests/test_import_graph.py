"""The import graph of galaxy_spark, read with ``ast`` (nothing is imported): the layers hold without
exception, evaluation never imports the report or the studies, and no module imports in a cycle —
counting imports inside functions too."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "galaxy_spark"


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: galaxy_spark modules it imports anywhere in its body}; ``from pkg import mod`` counts
    as an import of ``pkg.mod`` when that is a module."""
    modules = {module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in modules:      # a name inside a module → the module
                    t = t.rpartition(".")[0]
                if t.startswith("galaxy_spark") and t != name and t != "galaxy_spark":
                    deps.add(t)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_evaluate_never_imports_report_or_studies():
    graph = import_graph()
    bad = {m: sorted(d for d in deps if d.startswith(("galaxy_spark.report", "galaxy_spark.studies")))
           for m, deps in graph.items() if m.startswith("galaxy_spark.evaluate")}
    assert not {m: d for m, d in bad.items() if d}


# Data flows down this list, never back (README "Layout"): a module imports only its own layer and
# the layers before it, with no exception. `base` is the package's top-level modules (config,
# errors, survey, features, metrics, filters, spark, cli); `drawing` (figures, HTML blocks) sits
# right above it so any layer can draw; the studies run whole pipelines, so they sit on top.
LAYERS = ("base", "drawing", "io", "catalog", "fitting", "mock", "model", "train", "estimate", "evaluate", "report",
          "studies", "commands")


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in LAYERS else "base"


def test_no_cycle_anywhere():
    assert cycles(import_graph()) == []


def test_layers_import_only_earlier_layers():
    graph = import_graph()
    bad = [f"{m} -> {d}" for m, deps in graph.items() for d in deps
           if LAYERS.index(layer(d)) > LAYERS.index(layer(m))]
    assert not bad, bad


def test_every_package_is_a_layer():
    assert {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()} == set(LAYERS) - {"base"}

"""The import graph of galaxy_spark, read with ``ast`` (nothing is imported): evaluation never imports
the report, the report's figure modules that lower layers call import nothing of the pipeline, and
no cycle runs through evaluate/ or report/ — counting imports inside functions too."""
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


def test_evaluate_never_imports_report():
    graph = import_graph()
    bad = {m: sorted(d for d in deps if d.startswith("galaxy_spark.report"))
           for m, deps in graph.items() if m.startswith("galaxy_spark.evaluate")}
    assert not {m: d for m, d in bad.items() if d}


def test_lower_layers_draw_only_with_pure_figure_modules():
    """mock/ may call report.validation_plots; that module (and report.figure) import nothing else
    of galaxy_spark but report.figure."""
    graph = import_graph()
    for m in ("galaxy_spark.report.figure", "galaxy_spark.report.validation_plots"):
        assert graph[m] <= {"galaxy_spark.report.figure"}, (m, graph[m])


def test_no_cycle_through_evaluate_or_report():
    mine = ("galaxy_spark.evaluate", "galaxy_spark.report")
    found = [c for c in cycles(import_graph()) if any(m.startswith(mine) for m in c)]
    assert not found


# Data flows down this list, never back (README "Layout"): a module imports only its own layer and
# the layers before it. `base` is the package's top-level modules (config, errors, survey, features,
# metrics, filters, spark, cli). The pure drawing modules are usable from any layer (training logs
# its curves, the mock validation draws its comparison); they import only base and each other.
LAYERS = ("base", "io", "catalog", "fitting", "mock", "model", "train", "estimate", "evaluate", "report",
          "commands")
DRAWING = {"galaxy_spark.report.figure", "galaxy_spark.report.plots", "galaxy_spark.report.validation_plots"}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in LAYERS else "base"


def test_no_cycle_anywhere():
    assert cycles(import_graph()) == []


def test_layers_import_only_earlier_layers():
    graph = import_graph()
    bad = []
    for m, deps in graph.items():
        for d in deps:
            if d in DRAWING:
                continue
            if LAYERS.index(layer(d)) > LAYERS.index(layer(m)):
                bad.append(f"{m} -> {d}")
    assert not bad, bad
    for m in DRAWING:
        assert all(layer(d) == "base" or d in DRAWING for d in graph[m]), (m, graph[m])

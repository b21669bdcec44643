"""edgekit's import graph: no module imports itself through others (no cycle), and no layer
imports one above it (STYLE.md, "The intended layering").

Every import counts, at module level and inside functions alike: an import deferred into a
function is still a dependency (it runs the first time the function does), so moving an import
into a function does not remove a cycle here. ``from edgekit.x import name`` depends on the
submodule ``edgekit.x.name`` when there is one, else on the package ``edgekit.x`` (its
``__init__``). Importing a submodule is not counted as importing its parent package's
``__init__`` (Python runs it first, but the package importing its own parts is not a cycle).

Known exceptions are listed with the issue item that removes them; an exception that no longer
occurs fails the test too, so that the list cannot go stale.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "edgekit"

# Standard-library-only modules at the package root: below every layer, the runtime included.
# edgekit.stopping: early stopping's rule names and record words, shared by train, its CLI and
# the replay benchmark without importing Keras.
BASE = {"edgekit", "edgekit.devices", "edgekit.messages", "edgekit.stopping", "edgekit.tempfiles"}

# layer -> the layers it may import (besides itself and BASE). From STYLE.md: models imports
# nothing of edgekit; the runtime imports nothing above it; data (calibration iterables,
# preprocessing) uses the runtime's preprocessing spec; train uses models and data; export uses
# models, data, the runtime (to validate what it wrote) and profile (to time what it wrote);
# profile uses the runtime (and models to count a Keras model); cli may use every layer.
# evaluation, qat, filters and benchmark are the layers STYLE.md does not map: each sits above
# what it evaluates, fine-tunes, reads or measures. run_record (the run folder's file names and
# its edgekit.json record, STYLE.md "One home per concept") sits just above the runtime, whose
# PreprocessSpec it types the record with, so that every layer that reads or writes a run folder
# (train, evaluation, export, profile, qat, filters, benchmark, cli) asks it.
LAYERS = {
    "models": set(),
    "runtime": set(),
    "run_record": {"runtime"},
    "data": {"runtime"},
    "profile": {"runtime", "models", "run_record"},
    "train": {"models", "data", "runtime", "run_record"},
    "evaluation": {"models", "data", "runtime", "run_record"},
    "export": {"models", "data", "runtime", "profile", "run_record"},
    "qat": {"models", "data", "runtime", "train", "run_record"},
    "filters": {"models", "runtime", "export", "run_record"},
    "benchmark": {"models", "data", "runtime", "profile", "export", "run_record"},
    # latency: exports zoo configurations (random calibration batches as data's CalibrationData) and
    # times them with the profiler.
    "latency": {"models", "data", "runtime", "profile", "export"},
    # scale (issue 16 item 3): counts zoo models, predicts with a latency model, exports and times
    # the finalists, and proxy-trains them.
    "scale": {"models", "runtime", "profile", "export", "data", "train", "latency", "run_record"},
    "cli": {"models", "runtime", "data", "profile", "train", "evaluation", "export", "qat", "filters", "benchmark",
            "run_record", "latency", "scale"},
}

# (importer, imported) edges allowed for now, each with what removes it.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The edgekit modules that ``name`` (the module at ``path``) imports, anywhere in its code."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "edgekit" or target.startswith("edgekit."):
                while target not in known:  # `import edgekit.a.b` of a name that is not a module
                    target = target.rpartition(".")[0]
                found.add(target)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def layer(name: str) -> str:
    return "base" if name in BASE else name.split(".")[1]


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph)))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_every_module_is_in_a_known_layer():
    unknown = sorted(n for n in modules() if layer(n) not in LAYERS and layer(n) != "base")
    assert not unknown, f"modules outside every layer of LAYERS (add their layer): {unknown}"


def test_base_modules_import_the_standard_library_only():
    for name in sorted(BASE):
        path = modules()[name]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [a.name.partition(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert not node.level, f"{name} has a relative import"
                roots = [(node.module or "").partition(".")[0]]
            else:
                continue
            for root in roots:
                assert root in sys.stdlib_module_names, f"{name} imports {root}, not in the standard library"


def test_no_import_cycles():
    found = {frozenset(c) for c in cycles(import_graph())}
    unexpected = [sorted(c) for c in found - set(KNOWN_CYCLES)]
    assert not unexpected, f"import cycles: {unexpected}"
    stale = [sorted(c) for c in set(KNOWN_CYCLES) - found]
    assert not stale, f"known cycles that no longer occur (remove them from KNOWN_CYCLES): {stale}"


def test_no_layer_imports_upward():
    graph = import_graph()
    upward = set()
    for importer, targets in graph.items():
        source = layer(importer)
        for target in targets:
            dest = layer(target)
            if dest == "base" or dest == source:
                continue
            if source == "base" or dest not in LAYERS[source]:
                upward.add((importer, target))
    unexpected = sorted(upward - set(KNOWN_UPWARD))
    assert not unexpected, "imports against the layering (importer -> imported): " + ", ".join(
        f"{a} -> {b} ({layer(a)} may import {sorted(LAYERS.get(layer(a), ()))})" for a, b in unexpected)
    stale = sorted(set(KNOWN_UPWARD) - upward)
    assert not stale, f"known upward imports that no longer occur (remove them from KNOWN_UPWARD): {stale}"


def test_the_checker_sees_function_level_imports_and_cycles():
    graph = {"edgekit.a.x": {"edgekit.a.y"}, "edgekit.a.y": {"edgekit.a.z"}, "edgekit.a.z": {"edgekit.a.x"},
             "edgekit.a.w": set()}
    assert cycles(graph) == [{"edgekit.a.x", "edgekit.a.y", "edgekit.a.z"}]
    # budget.py imports edgekit.profile.latency inside a function only
    assert "edgekit.profile.latency" in import_graph()["edgekit.export.budget"]

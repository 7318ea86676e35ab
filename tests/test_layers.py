"""The package structure holds: no import cycles between modules, the layer contract, no class-name strings.

Layers, top to bottom (pyproject.toml [tool.importlinter]): agent.cli, agent.slack, evals, agent.service,
agent.state, graphs, tools | policies, workers | fleet, llm | brain, core. grimp's graph counts every import:
module level, inside functions and under TYPE_CHECKING.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grimp
import networkx as nx

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "llm", "brain", "fleet", "workers", "tools", "policies", "graphs", "agent", "evals")
SKIP_DIRS = {".venv", "build", "dist", "node_modules", "out", "__pycache__"}


def import_graph() -> tuple[grimp.ImportGraph, nx.DiGraph]:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    modules = nx.DiGraph()
    modules.add_nodes_from(graph.modules)
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            modules.add_edge(importer, imported)
    return graph, modules


def describe_cycle(graph: grimp.ImportGraph, modules: nx.DiGraph, component: set[str]) -> str:
    cycle = nx.find_cycle(modules.subgraph(component))
    lines = [f"import cycle among {sorted(component)}:"]
    for importer, imported in cycle:
        details = graph.get_import_details(importer=importer, imported=imported)
        where = ", ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details) or "?"
        lines.append(f"  {importer} -> {imported}  ({where})")
    return "\n".join(lines)


def test_no_import_cycle_between_modules() -> None:
    graph, modules = import_graph()
    assert len(modules) > 50, f"grimp found only {len(modules)} modules: is the repo importable?"
    cycles = [c for c in nx.strongly_connected_components(modules) if len(c) > 1]
    cycles += [{m} for m in modules if modules.has_edge(m, m)]
    report = "\n\n".join(describe_cycle(graph, modules, c) for c in cycles)
    print(report)
    assert not cycles, report


def test_layer_contract_is_kept() -> None:
    runner = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    done = subprocess.run(
        [sys.executable, "-c", runner, "--config", str(REPO_ROOT / "pyproject.toml"), "--no-cache"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 0, output
    assert "brainops layers KEPT" in output and "0 broken" in output, output


# A class's name compared as a string (instead of isinstance against the real class):
#   type(x).__name__ == "C", x.__class__.__name__ != "C", type(x).__name__ in (...), "C" == type(x).__name__
_NAME = r"(?:type\(.*\)|[\w.\]\)]*__class__)\.__(?:qual)?name__"
CLASS_NAME_COMPARISON = re.compile(
    rf"{_NAME}\s*(?:==|!=|not\s+in\b|in\b)|(?:==|!=)\s*{_NAME}|^\s*match\s+{_NAME}|\bcase\s+{_NAME}"
)


def python_files() -> list[Path]:
    me = Path(__file__).resolve()
    return sorted(
        p
        for p in REPO_ROOT.rglob("*.py")
        if p.resolve() != me
        and not SKIP_DIRS & set(p.relative_to(REPO_ROOT).parts[:-1])
        and not any(part.startswith(".") or part.endswith(".egg-info") for part in p.relative_to(REPO_ROOT).parts)
    )


def test_the_class_name_pattern_finds_what_it_should() -> None:
    hits = [
        'if type(exc).__name__ != "FleetLLMUnavailable":',
        'return type(reservation).__name__ == "BudgetExhausted"',
        'ok = exc.__class__.__name__ in ("A", "B")',
        'if "A" == type(x).__name__:',
        "if self.err.__class__.__qualname__ not in names:",
    ]
    misses = [
        'raise TypeError(f"need an int, got {type(value).__name__}")',
        'return {"kind": type(exc).__name__, "detail": str(exc)}',
        "name = cls.__name__",
    ]
    assert all(CLASS_NAME_COMPARISON.search(line) for line in hits)
    assert not any(CLASS_NAME_COMPARISON.search(line) for line in misses)


def test_no_module_compares_class_names_as_strings() -> None:
    files = python_files()
    assert any(p.parts[-2:] == ("fleet", "remote.py") for p in files)
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if CLASS_NAME_COMPARISON.search(line)
    ]
    assert not offenders, "compare with isinstance against the real class instead:\n" + "\n".join(offenders)

"""The package's shape, read from its source: no import cycle, no private name crossing modules.

A cycle between two modules means neither can be understood (or imported) alone; a private name
(`_x`) imported from another module is a contract nobody declared. Both are checked on every
import statement, including those inside functions, because a lazy import is still a dependency.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mer_utils"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports():
    """(importer, imported module, imported names) for every `mer_utils` import in the package."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    for name, path in sorted(modules.items()):
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                if not base.startswith("mer_utils"):
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    yield name, (sub if sub in modules else base), alias.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("mer_utils"):
                        yield name, alias.name, None


def test_no_private_name_is_imported_from_another_module():
    crossing = sorted({f"{importer} imports {name} from {source}"
                       for importer, source, name in _imports()
                       if name and name.startswith("_") and not name.startswith("__")})
    assert not crossing, "private names used across modules (make them public or move them):\n" + "\n".join(crossing)


def _graph():
    graph = {}
    for importer, source, _ in _imports():
        if source != importer and not importer.startswith(source + "."):  # a package's own __init__ is not a cycle
            graph.setdefault(importer, set()).add(source)
    return graph


def test_no_import_cycle_between_modules():
    graph = _graph()
    cycles = set()

    def visit(node, path, on_path):
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                loop = path[path.index(nxt):]
                start = loop.index(min(loop))
                cycles.add(" -> ".join(loop[start:] + loop[:start] + [min(loop)]))
            elif nxt not in done:
                visit(nxt, path + [nxt], on_path | {nxt})
        done.add(node)

    done = set()
    for node in sorted(graph):
        if node not in done:
            visit(node, [node], {node})
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles))


@pytest.mark.parametrize("layer, must_not_import", [
    ("mer_utils.core", ("mer_utils.data", "mer_utils.protocols", "mer_utils.experts", "mer_utils.fusion",
                        "mer_utils.report", "mer_utils.demo", "mer_utils.commands")),
    ("mer_utils.data", ("mer_utils.protocols", "mer_utils.experts", "mer_utils.fusion", "mer_utils.report",
                        "mer_utils.demo", "mer_utils.commands")),
    ("mer_utils.protocols", ("mer_utils.experts", "mer_utils.fusion", "mer_utils.report", "mer_utils.demo",
                             "mer_utils.commands")),
    ("mer_utils.experts", ("mer_utils.fusion", "mer_utils.report", "mer_utils.demo", "mer_utils.commands")),
    ("mer_utils.fusion", ("mer_utils.report", "mer_utils.demo", "mer_utils.commands")),
])
def test_layers_import_only_to_their_left(layer, must_not_import):
    wrong = sorted({f"{importer} imports {source}" for importer, source, _ in _imports()
                    if importer.startswith(layer) and source.startswith(must_not_import)})
    assert not wrong, "\n".join(wrong)

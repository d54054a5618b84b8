"""The package's shape: imports go one way, files stay small, modules keep their privates.

Imports inside functions count (a cycle through a function-level import is still a cycle). These
checks fail with the offending modules named, so a new module that breaks the layering is caught
here rather than in a review."""
import ast
from pathlib import Path

import networkx as nx

PKG = Path(__file__).resolve().parents[1] / "gradc"
MAX_LINES = 600


def _modules():
    mods = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(mods):
    """(importer, imported module, imported name or None) for every import statement."""
    found = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(name, a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module
                for a in node.names:
                    sub = f"{module}.{a.name}"
                    found.append((name, sub, None) if sub in mods else (name, module, a.name))
    return found


def test_no_import_cycles():
    mods = _modules()
    g = nx.DiGraph()
    g.add_nodes_from(mods)
    for importer, module, _ in _imports(mods):
        if module in mods and module != importer:
            g.add_edge(importer, module)
    cycles = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
    assert not cycles, f"modules that import each other (directly or in a ring): {cycles}"


def test_no_module_imports_another_modules_private_names():
    mods = _modules()
    # (gradc.nn.modules.* give torch's module paths, whose base classes are underscored: _BatchNorm, _Loss)
    bad = [f"{importer} imports {module}.{n}" for importer, module, n in _imports(mods)
           if n and n.startswith("_") and not n.startswith("__") and module.startswith("gradc")
           and not importer.startswith("gradc.nn.modules.")]
    assert not bad, "private names used across modules: " + "; ".join(bad)


def test_no_file_over_the_line_limit():
    long = {str(p.relative_to(PKG.parent)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_the_op_table_sits_below_the_tensor():
    """ops/ never imports tensor.py (VJPs use the functional layer), and the thin Tensor core imports
    no op: the table is the single place a primitive is registered."""
    mods = _modules()
    bad = [(i, m) for i, m, _ in _imports(mods)
           if (i.startswith("gradc.ops") and m == "gradc.tensor") or (i == "gradc.tensor" and m.startswith("gradc.ops"))]
    assert not bad, f"imports across the ops/tensor boundary: {bad}"


def test_the_checks_see_a_cycle(tmp_path, monkeypatch):
    """The cycle check is not vacuous: two modules that import each other are reported."""
    pkg = tmp_path / "gradc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from .a import f\nfrom .a import _hidden\n")
    monkeypatch.setattr(__import__(__name__), "PKG", pkg)
    try:
        test_no_import_cycles()
    except AssertionError as e:
        assert "gradc.a" in str(e) and "gradc.b" in str(e)
    else:
        raise AssertionError("the cycle between gradc.a and gradc.b was not found")
    try:
        test_no_module_imports_another_modules_private_names()
    except AssertionError as e:
        assert "gradc.a._hidden" in str(e)
    else:
        raise AssertionError("the private import was not found")

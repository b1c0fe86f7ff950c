"""Layering: every import of ``tr2_core`` and ``tr2_ros`` follows the layer table of
docs/architecture.md (read from the page, so the page and the code cannot drift), and
the ROS-free library ``tr2_core`` never imports ``tr2_ros``.

Every tr2_core module is imported in a fresh interpreter whose import system
refuses tr2_ros; a lazy import inside a function is caught by reading the
sources."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tr2_core

CORE = Path(tr2_core.__file__).resolve().parent
ROS = CORE.parent / "tr2_ros"
ARCHITECTURE = CORE.parent / "docs" / "architecture.md"

BLOCKED_IMPORT = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    class BlockRos:
        def find_spec(self, name, path=None, target=None):
            if name == "tr2_ros" or name.startswith("tr2_ros."):
                raise ImportError(f"blocked: {name} (tr2_core must not import tr2_ros)")
            return None

    sys.meta_path.insert(0, BlockRos())
    try:
        import tr2_ros  # the blocker must work, or this test proves nothing
    except ImportError:
        pass
    else:
        sys.exit("the tr2_ros blocker did not block")
    import tr2_core
    failed = []
    # __main__ runs the command line when imported: it is the CLI, checked below.
    names = [m.name for m in pkgutil.walk_packages(tr2_core.__path__, "tr2_core.")
             if not m.name.endswith("__main__")]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            failed.append(f"{name}: {e}")
    from tr2_core.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    if "bag" in commands or "video" not in commands:  # bag comes from tr2_ros only
        failed.append(f"commands without tr2_ros: {sorted(commands)}")
    leaked = sorted(m for m in sys.modules if m.split(".")[0] == "tr2_ros")
    print(len(names), "modules")
    if failed or leaked:
        sys.exit("\\n".join(failed + leaked))
    """
)


def test_every_core_module_imports_without_tr2_ros():
    run = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORT], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert int(run.stdout.split()[0]) > 40  # the walk really found the package


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_core_source_imports_tr2_ros_even_lazily():
    offenders = [
        f"{path.relative_to(CORE.parent)} imports {name}"
        for path in sorted(CORE.rglob("*.py"))
        for name in sorted(_imported_modules(path))
        if name.split(".")[0] == "tr2_ros"
    ]
    assert offenders == []


def test_the_source_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from tr2_ros.bag import process_bag\n")
    assert "tr2_ros.bag" in _imported_modules(module)


# --------------------------------------------------------------------------- the layer table


def layer_table(page: str) -> dict[str, int]:
    """Unit -> layer, from the table under ``## Who may import whom``: rows
    ``| N | `a.py`, `pkg/` | job |``; units are paths under ``tr2_core/``, and
    ``tr2_ros/`` for the ROS package.

    Raises:
        ValueError: no such section or table, or a unit in two rows.
    """
    section = page.partition("## Who may import whom")[2].partition("\n## ")[0]
    table: dict[str, int] = {}
    for line in section.splitlines():
        row = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if row is None:
            continue
        for unit in re.findall(r"`([^`]+)`", row.group(2)):
            if unit in table:
                raise ValueError(f"{unit} is in layers {table[unit]} and {row.group(1)}")
            table[unit] = int(row.group(1))
    if not table:
        raise ValueError("no layer table under '## Who may import whom'")
    return table


def unit_of(module: str) -> str | None:
    """The table's unit of a dotted module name (None: the bare package, or not ours)."""
    parts = module.split(".")
    if parts[0] == "tr2_ros":
        return "tr2_ros/"
    if parts[0] != "tr2_core" or len(parts) == 1:
        return None
    return f"{parts[1]}/" if (CORE / parts[1]).is_dir() else f"{parts[1]}.py"


def source_units() -> dict[str, set[str]]:
    """Unit -> the units its sources import (at the top or inside a function)."""
    imports: dict[str, set[str]] = {}
    for root in (CORE, ROS):
        for path in sorted(root.rglob("*.py")):
            if path == CORE / "__init__.py":
                continue  # the package itself: it imports nothing of tr2
            unit = unit_of(".".join(path.relative_to(CORE.parent).with_suffix("").parts))
            assert unit is not None, path
            imported = {unit_of(name) for name in _imported_modules(path)}
            imports.setdefault(unit, set()).update(imported - {None, unit})
    return imports


def layer_violations(table: dict[str, int], imports: dict[str, set[str]]) -> list[str]:
    """What breaks the table: a unit it does not place, a unit it names that does not
    exist, and every import of a higher layer."""
    problems = [f"{unit}: not in the layer table" for unit in sorted(set(imports) - set(table))]
    problems += [
        f"{unit}: in the layer table, not in the tree" for unit in sorted(set(table) - set(imports))
    ]
    for unit, imported in sorted(imports.items()):
        for other in sorted(imported):
            if unit in table and other in table and table[other] > table[unit]:
                problems.append(
                    f"{unit} (layer {table[unit]}) imports {other} (layer {table[other]})"
                )
    return problems


def test_every_import_follows_the_layer_table_of_the_architecture_page():
    table = layer_table(ARCHITECTURE.read_text(encoding="utf-8"))
    imports = source_units()
    assert {"vocab.py", "models/", "stream/", "cli/", "tr2_ros/"} <= set(table)
    assert len(imports) > 20 and imports["cli/"]  # the walk found the package
    assert layer_violations(table, imports) == []
    assert "train/" not in imports["stream/"]  # the engine runs without the training code


def test_the_layer_check_can_fail():
    page = """# A
## Who may import whom

| layer | modules | job |
|---|---|---|
| 1 | `low.py` | the bottom (`high.py` named in the job is ignored) |
| 2 | `high.py`, `gone/` | above |

## Next
| 3 | `not_a_layer.py` | another section |
"""
    table = layer_table(page)
    assert table == {"low.py": 1, "high.py": 2, "gone/": 2}
    imports = {"low.py": {"high.py"}, "high.py": {"low.py"}, "new.py": set()}
    assert layer_violations(table, imports) == [
        "new.py: not in the layer table",
        "gone/: in the layer table, not in the tree",
        "low.py (layer 1) imports high.py (layer 2)",
    ]
    with pytest.raises(ValueError, match="in layers 1 and 2"):
        layer_table(page.replace("`high.py`, `gone/`", "`low.py`"))
    with pytest.raises(ValueError, match="no layer table"):
        layer_table("# A\n")


def test_units_are_the_table_s_paths():
    assert unit_of("tr2_core.stream.engine") == "stream/"
    assert unit_of("tr2_core.outputs") == "outputs.py"
    assert unit_of("tr2_ros.node") == "tr2_ros/"
    assert unit_of("tr2_core") is None and unit_of("numpy") is None

"""Layering: the ROS-free library ``tr2_core`` never imports ``tr2_ros``.

Every tr2_core module is imported in a fresh interpreter whose import system
refuses tr2_ros; a lazy import inside a function is caught by reading the
sources."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import tr2_core

CORE = Path(tr2_core.__file__).resolve().parent

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

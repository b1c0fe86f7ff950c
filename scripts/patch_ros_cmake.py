"""Point the ROS wheels' exported CMake files at this Python's include paths.

The ros-jazzy-* wheels were built under /opt/python/cp3XX-cp3XX and their
CMake exports (``<prefix>/share/*/cmake/*.cmake``) name that machine's
Python and NumPy include directories; cmake then stops with "includes
non-existent path". Rewrites them to ``sysconfig``'s include and NumPy's
include. NumPy's is named through a symbolic link outside the repository
(``$XDG_CACHE_HOME/tr2/ros-include/<venv hash>/numpy``): the project's venv lives
inside the repository, which is also the package's source folder, and CMake refuses
an exported include path "prefixed in the source directory". Idempotent (an earlier
rewrite to the venv's own NumPy path is rewritten again); prints how many files it
changed.

Usage: python scripts/patch_ros_cmake.py [PREFIX]   (default: sys.prefix)
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import sysconfig
from pathlib import Path

import numpy

# The build machine's include dirs: .../include/python3.XX and NumPy's include under it.
_FOREIGN = re.compile(
    r"/opt/python/cp3\d+-cp3\d+/(?:lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include"
    r"|include/python3\.\d+)"
    r"|[^;\"\s]*/site-packages/numpy/(?:_core|core)/include"
)


def numpy_include_link(prefix: Path) -> str:
    """A symbolic link to NumPy's include folder, outside any repository (see above)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = hashlib.sha256(str(prefix.resolve()).encode()).hexdigest()[:12]
    link = cache / "tr2" / "ros-include" / tag / "numpy"
    link.parent.mkdir(parents=True, exist_ok=True)
    target = numpy.get_include()
    if link.is_symlink() or link.exists():
        if os.readlink(link) == target:
            return str(link)
        link.unlink()
    link.symlink_to(target, target_is_directory=True)
    return str(link)


def patch(prefix: Path) -> int:
    """Rewrite the foreign include paths under ``prefix/share``; returns files changed."""
    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy_include_link(prefix)

    def local(match: re.Match[str]) -> str:
        return numpy_include if "numpy/" in match.group(0) else python_include

    changed = 0
    for path in sorted((prefix / "share").glob("*/cmake/*.cmake")):
        text = path.read_text(encoding="utf-8")
        new = _FOREIGN.sub(local, text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed += 1
    return changed


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(sys.prefix)
    print(f"patch_ros_cmake: {patch(root)} CMake file(s) rewritten under {root / 'share'}")

"""Reading ``.npz`` files that users pass in (predictions, text tables, frequency tables,
per-frame results), whoever wrote them.

Arrays are read without unpickling (``allow_pickle=False``) and handed on in the
machine's byte order: a file written on a big-endian machine, or by a tool that stores
big-endian data, holds ``>f8`` / ``>U20`` arrays that torch cannot take
(``torch.from_numpy``) and that compare unequal by dtype with everything tr2 builds.
Every ``.npy`` format version (1.0, 2.0, 3.0), compressed or not, C or Fortran order,
reads the same.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["native_byte_order", "read_npz"]


def native_byte_order(array: np.ndarray) -> np.ndarray:
    """``array`` itself when its dtype is in the machine's byte order, else a converted copy."""
    if array.dtype.isnative:
        return array
    return array.astype(array.dtype.newbyteorder("="))


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, by name, in native byte order.

    Raises:
        OSError, ValueError, zipfile.BadZipFile: as :func:`numpy.load` (an array that
            needs unpickling raises ValueError); callers turn these into their own errors.
    """
    with np.load(path, allow_pickle=False) as npz:
        return {name: native_byte_order(npz[name]) for name in npz.files}

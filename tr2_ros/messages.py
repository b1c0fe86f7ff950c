"""The ``tr2`` message types, and the namespaces of message classes that the
ROS-free conversions build messages through.

The same conversion code builds messages with two families of classes:

* rclpy's generated classes on a robot (:func:`rclpy_classes`), and
* rosbags' classes in tests and offline tools such as ``tr2 bag``
  (:func:`rosbags_classes`, built on :func:`make_typestore`).

Both have the same field names; they differ in what they accept for
primitive sequences (rosbags: NumPy arrays, rclpy: :class:`array.array` or
lists) and :class:`MessageClasses` hides that difference behind
:meth:`MessageClasses.sequence`.
"""

from __future__ import annotations

import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tr2_core.errors import Tr2Error

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

ROS_PACKAGE = "tr2"
"""ROS package that owns the messages (``tr2/msg/SceneGraph``). Deliberately
different from the Python packages ``tr2_core`` / ``tr2_ros`` (a package that generates
interfaces and installs a Python package of its own name fails to build:
ros2/rosidl_python#141)."""

MESSAGE_NAMES: tuple[str, ...] = (
    "PredicateScores",
    "SceneGraphNode",
    "SceneGraphEdge",
    "SceneGraph",
    "Vocabulary",
)
"""Our message definitions, ``msg/<name>.msg``, dependencies first."""

REPO_MSG_DIR = Path(__file__).resolve().parent.parent / "msg"
"""``msg/`` at the repository root (checkouts and editable installs)."""


def type_name(name: str) -> str:
    """Full ROS 2 type name: ``SceneGraph`` -> ``tr2/msg/SceneGraph``."""
    return f"{ROS_PACKAGE}/msg/{name}"


def find_msg_dir() -> Path:
    """Directory holding ``SceneGraph.msg`` and its parts.

    The repository's ``msg/`` when running from a checkout, else the
    installed ROS package's ``share/tr2/msg`` (found through ament_index).

    Raises:
        Tr2Error: no directory with the definitions was found.
    """
    if (REPO_MSG_DIR / "SceneGraph.msg").is_file():
        return REPO_MSG_DIR
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(ROS_PACKAGE)) / "msg"
        if (share / "SceneGraph.msg").is_file():
            return share
    except Exception:  # ament_index missing or package not installed
        pass
    raise Tr2Error(
        f"cannot find the tr2 message definitions: neither {REPO_MSG_DIR} nor an installed "
        "ROS package 'tr2' (share/tr2/msg) holds SceneGraph.msg"
    )


def message_definitions(msg_dir: Path | None = None) -> dict[str, str]:
    """The ``.msg`` texts by full type name (``tr2/msg/SceneGraph`` -> text)."""
    msg_dir = find_msg_dir() if msg_dir is None else Path(msg_dir)
    return {type_name(n): (msg_dir / f"{n}.msg").read_text(encoding="utf-8") for n in MESSAGE_NAMES}


def register_types(typestore: Typestore, msg_dir: Path | None = None) -> None:
    """Register the ``tr2/msg/*`` types into a rosbags typestore (in place).

    The typestore must already know ``std_msgs/msg/Header`` and
    ``builtin_interfaces/msg/Time`` (every ROS 2 store does).
    """
    from rosbags.typesys import get_types_from_msg

    types: dict[str, Any] = {}
    for full_name, text in message_definitions(msg_dir).items():
        types.update(get_types_from_msg(text, full_name))
    typestore.register(types)


def make_typestore(distro: str = "humble", msg_dir: Path | None = None) -> Typestore:
    """A rosbags typestore of ROS 2 ``distro`` (humble, iron, jazzy, kilted, ...)
    with the ``tr2`` messages registered, for reading/writing bags offline."""
    from rosbags.typesys import Stores, get_typestore

    try:
        store = Stores(f"ros2_{distro}")
    except ValueError:
        known = sorted(s.value.removeprefix("ros2_") for s in Stores if s.value.startswith("ros2_"))
        raise Tr2Error(f"unknown ROS 2 distribution {distro!r}; rosbags knows {known}") from None
    typestore = get_typestore(store)
    register_types(typestore, msg_dir)
    return typestore


# --------------------------------------------------------------------------
# Namespaces of message classes.

_TYPECODES = {
    np.dtype(np.float32): "f",
    np.dtype(np.float64): "d",
    np.dtype(np.uint8): "B",
    np.dtype(np.int8): "b",
    np.dtype(np.uint16): "H",
    np.dtype(np.int16): "h",
    np.dtype(np.uint32): "I",
    np.dtype(np.int32): "i",
    np.dtype(np.uint64): "Q",
    np.dtype(np.int64): "q",
}


def _numpy_sequence(values: np.ndarray) -> Any:
    return np.ascontiguousarray(values).reshape(-1)


def _rclpy_sequence(values: np.ndarray) -> Any:
    values = np.ascontiguousarray(values).reshape(-1)
    if values.dtype == np.bool_:
        return [bool(v) for v in values]  # rclpy keeps bool[] as a list
    return array.array(_TYPECODES[values.dtype], values.tobytes())


@dataclass(frozen=True)
class MessageClasses:
    """The message classes the conversions build with, and how primitive
    sequences (``float32[]``, ``uint8[]``, ``bool[]``) must be passed to them.

    Attributes:
        Time: ``builtin_interfaces/msg/Time``.
        Header: ``std_msgs/msg/Header``.
        Image: ``sensor_msgs/msg/Image``.
        CompressedImage: ``sensor_msgs/msg/CompressedImage``.
        SceneGraph, SceneGraphNode, SceneGraphEdge, PredicateScores, Vocabulary:
            ``tr2/msg/*``.
        sequence: maps a 1-D NumPy array of the field's dtype to the value
            the classes accept for an unbounded primitive sequence.
    """

    Time: type
    Header: type
    Image: type
    CompressedImage: type
    SceneGraph: type
    SceneGraphNode: type
    SceneGraphEdge: type
    PredicateScores: type
    Vocabulary: type
    sequence: Callable[[np.ndarray], Any]


def rosbags_classes(typestore: Typestore | None = None) -> MessageClasses:
    """rosbags' classes (tests, offline tools); ``typestore`` defaults to
    :func:`make_typestore` ``("humble")``."""
    ts = make_typestore() if typestore is None else typestore
    t = ts.types
    return MessageClasses(
        Time=t["builtin_interfaces/msg/Time"],
        Header=t["std_msgs/msg/Header"],
        Image=t["sensor_msgs/msg/Image"],
        CompressedImage=t["sensor_msgs/msg/CompressedImage"],
        **{name: t[type_name(name)] for name in MESSAGE_NAMES},
        sequence=_numpy_sequence,
    )


def rclpy_classes() -> MessageClasses:
    """rclpy's generated classes (needs a sourced ROS 2 workspace with ``tr2`` built)."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header
    from tr2 import msg as tr2_msg

    return MessageClasses(
        Time=Time,
        Header=Header,
        Image=Image,
        CompressedImage=CompressedImage,
        **{name: getattr(tr2_msg, name) for name in MESSAGE_NAMES},
        sequence=_rclpy_sequence,
    )

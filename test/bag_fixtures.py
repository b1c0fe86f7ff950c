"""Small rosbag2 bags for the tests of ``tr2 bag``: images (raw or compressed) on one
topic at 10 Hz, std_msgs/String chatter between them, written and read with rosbags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from tr2_ros.messages import make_typestore

TS = make_typestore("humble")
IMAGE_T, COMPRESSED_T, STRING_T = (
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CompressedImage",
    "std_msgs/msg/String",
)
TOPIC = "/camera/image"
T0 = 100 * 10**9
DT = 100_000_000  # 10 Hz
LATENCY = 5_000_000  # bag (receive) time = stamp + 5 ms


def _header(k: int):
    t = T0 + k * DT
    time = TS.types["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9)
    return TS.types["std_msgs/msg/Header"](stamp=time, frame_id="cam")


def raw_image(k: int, rgb: np.ndarray, encoding: str = "rgb8", data=None):
    h, w = rgb.shape[:2]
    return TS.types[IMAGE_T](
        header=_header(k), height=h, width=w, encoding=encoding, is_bigendian=0, step=w * 3,
        data=rgb.reshape(-1) if data is None else data,
    )  # fmt: skip


def compressed_image(k: int, payload: bytes, fmt: str = "png"):
    return TS.types[COMPRESSED_T](
        header=_header(k), format=fmt, data=np.frombuffer(payload, np.uint8)
    )


def write_bag(path: Path, storage: str, msgtype: str, images: list, *, chatter: bool = True):
    """A bag with ``images`` (messages, or raw CDR bytes) on TOPIC and, between them,
    std_msgs/String on /chatter."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conn = w.add_connection(TOPIC, msgtype, typestore=TS)
        text = w.add_connection("/chatter", STRING_T, typestore=TS) if chatter else None
        for k, msg in enumerate(images):
            t = T0 + k * DT + LATENCY
            raw = msg if isinstance(msg, bytes) else TS.serialize_cdr(msg, msgtype)
            w.write(conn, t, raw)
            if text is not None:
                w.write(text, t + 1, TS.serialize_cdr(TS.types[STRING_T](data=f"m{k}"), STRING_T))


def read_bag(path: Path) -> dict[str, list[tuple[int, bytes]]]:
    """topic -> [(bag time, raw CDR)] in bag order."""
    out: dict[str, list[tuple[int, bytes]]] = {}
    with Reader(path) as r:
        for conn in r.connections:
            out.setdefault(conn.topic, [])
        for conn, t, raw in r.messages():
            out[conn.topic].append((t, bytes(raw)))
    return out

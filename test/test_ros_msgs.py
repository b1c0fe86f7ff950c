"""The tr2 message definitions: rosbags parses them, CDR round-trips every
field, RIHS01 hashes are pinned, the official rosidl parser accepts them and
agrees with rosbags field by field, and the ROS package files list them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tr2_core.vocab import FAMILIES, OBJECT_CLASSES, PREDICATES
from tr2_ros.messages import (
    MESSAGE_NAMES,
    REPO_MSG_DIR,
    make_typestore,
    message_definitions,
    rosbags_classes,
    type_name,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ros_interfaces"

# RIHS01 type hashes (REP-2011) of the messages as they are on the wire.
# A change here changes the interface: every robot, bag and planner that uses
# the old definition stops matching. Update only on purpose (and say so).
PINNED_RIHS01 = {
    "tr2/msg/PredicateScores": (
        "RIHS01_4b24a4c18fd504128ab6903431e95b39653ebbf7acbfdf1ca455953b3fa2de0c"
    ),
    "tr2/msg/SceneGraphNode": (
        "RIHS01_92c1a903d5b1d0e10d83aefda8d4d39a72896249d849e2e5df42ce8f60924ed4"
    ),
    "tr2/msg/SceneGraphEdge": (
        "RIHS01_c94322e1acfd51957014067eaa3d89d4a50e1e3946ac108c362122b225a3fdde"
    ),
    "tr2/msg/SceneGraph": (
        "RIHS01_b65356205fe772dc4b6c70d8c6bf1305711041d224c10365741ef6c537cebdb1"
    ),
    "tr2/msg/Vocabulary": (
        "RIHS01_437db7c086eecc283e0926651460c60616726b650b9464ee9a8f52f0a96ffd8c"
    ),
}

DISTROS = ("humble", "jazzy")


@pytest.fixture(scope="module")
def typestore():
    return make_typestore("humble")


@pytest.fixture(scope="module")
def classes(typestore):
    return rosbags_classes(typestore)


def test_msg_dir_holds_exactly_the_declared_messages():
    found = sorted(p.stem for p in REPO_MSG_DIR.glob("*.msg"))
    assert found == sorted(MESSAGE_NAMES)


@pytest.mark.parametrize("distro", DISTROS)
def test_rihs01_hashes_are_pinned(distro):
    ts = make_typestore(distro)
    assert {name: ts.hash_rihs01(name) for name in PINNED_RIHS01} == PINNED_RIHS01


def test_hash_detects_a_changed_field(tmp_path):
    for name, text in message_definitions().items():
        (tmp_path / f"{name.rsplit('/', 1)[1]}.msg").write_text(text)
    node = tmp_path / "SceneGraphNode.msg"
    node.write_text(node.read_text().replace("float32 score", "float64 score"))
    ts = make_typestore("humble", msg_dir=tmp_path)
    assert ts.hash_rihs01("tr2/msg/SceneGraphNode") != PINNED_RIHS01["tr2/msg/SceneGraphNode"]
    # ...and every message containing it changes too
    assert ts.hash_rihs01("tr2/msg/SceneGraph") != PINNED_RIHS01["tr2/msg/SceneGraph"]


def test_edge_fields_are_the_predicate_families(typestore):
    _, fields = typestore.fielddefs["tr2/msg/SceneGraphEdge"]
    family_fields = [name for name, _ in fields if name not in ("subject_id", "object_id")]
    assert family_fields == [f.name for f in FAMILIES]


def test_track_id_none_constant(classes):
    assert classes.SceneGraphNode.TRACK_ID_NONE == -1


def _full_graph(classes):
    """A SceneGraph with a distinct, non-default value in every field."""
    c = classes

    def scores(family, offset):
        k = family.size
        return c.PredicateScores(
            family=family.name,
            first_predicate_id=family.start,
            scores=np.linspace(0.05 + offset, 0.9, k, dtype=np.float32),
            top_predicate_id=family.stop - 1,
            top_predicate=PREDICATES[family.stop - 1],
            top_score=0.875,
            predicate_ids=np.array([family.stop - 1, family.start], dtype=np.uint8),
            predicates=[PREDICATES[family.stop - 1], PREDICATES[family.start]],
        )

    nodes = [
        c.SceneGraphNode(
            id=i,
            track_id=[7, -1, 2**40][i],
            label_id=[1, 11, 36][i],
            label=OBJECT_CLASSES[[1, 11, 36][i]],
            score=[1.0, 0.5, 0.25][i],
            box_xyxy=np.array([1.5 + i, 2.25, 640.0 - i, 479.75], dtype=np.float32),
        )
        for i in range(3)
    ]
    edges = [
        c.SceneGraphEdge(
            subject_id=0,
            object_id=o,
            **{f.name: scores(f, 0.01 * o) for f in FAMILIES},
        )
        for o in (1, 2)
    ]
    return c.SceneGraph(
        header=c.Header(
            stamp=c.Time(sec=1_700_000_000, nanosec=999_999_999), frame_id="camera_optical"
        ),
        image_width=640,
        image_height=480,
        nodes=nodes,
        edges=edges,
        window_stamps=[
            c.Time(sec=1_699_999_999, nanosec=5),
            c.Time(sec=1_700_000_000, nanosec=999_999_999),
        ],
        dropped_frames=2**33,
        rejected_frames=3,
    )


def _assert_equal(a, b, typestore, msgtype, where="msg"):
    """Compare two rosbags messages field by field, recursing into nested ones."""
    _, fields = typestore.fielddefs[msgtype]
    for name, (kind, detail) in fields:
        x, y = getattr(a, name), getattr(b, name)
        path = f"{where}.{name}"
        if kind.name == "NAME":
            _assert_equal(x, y, typestore, detail, path)
        elif kind.name in ("ARRAY", "SEQUENCE") and detail[0][0].name == "NAME":
            assert len(x) == len(y), path
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                _assert_equal(u, v, typestore, detail[0][1], f"{path}[{i}]")
        elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=path)
            assert np.asarray(x).dtype == np.asarray(y).dtype, path
        else:
            assert x == y, path


@pytest.mark.parametrize("distro", DISTROS)
def test_cdr_round_trip_every_field(distro):
    ts = make_typestore(distro)
    msg = _full_graph(rosbags_classes(ts))
    data = ts.serialize_cdr(msg, "tr2/msg/SceneGraph")
    back = ts.deserialize_cdr(data, "tr2/msg/SceneGraph")
    _assert_equal(msg, back, ts, "tr2/msg/SceneGraph")
    assert back.edges[1].contacting.scores.dtype == np.float32
    assert back.nodes[2].track_id == 2**40
    # the comparison itself can fail
    msg.nodes[1].box_xyxy[0] += 1
    with pytest.raises(AssertionError):
        _assert_equal(msg, back, ts, "tr2/msg/SceneGraph")


def test_cdr_round_trip_vocabulary(typestore, classes):
    from tr2_ros.conversions import build_vocabulary

    msg = build_vocabulary(classes)
    back = typestore.deserialize_cdr(
        typestore.serialize_cdr(msg, "tr2/msg/Vocabulary"), "tr2/msg/Vocabulary"
    )
    _assert_equal(msg, back, typestore, "tr2/msg/Vocabulary")
    assert back.predicates[back.family_first_predicate_id[2]] == "carrying"
    assert back.family_size.tolist() == [3, 6, 17]
    assert back.family_multi_label.tolist() == [False, True, True]


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_scene_graphs_in_a_rosbag2(tmp_path, typestore, classes, storage):
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    msg = _full_graph(classes)
    path = tmp_path / "bag"
    plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conn = writer.add_connection("/scene_graph", "tr2/msg/SceneGraph", typestore=typestore)
        for k in range(3):
            writer.write(conn, 1_000 + k, typestore.serialize_cdr(msg, "tr2/msg/SceneGraph"))
    with Reader(path) as reader:
        (connection,) = reader.connections
        assert connection.msgtype == "tr2/msg/SceneGraph"
        assert connection.digest == PINNED_RIHS01["tr2/msg/SceneGraph"] or storage == "sqlite3"
        rows = list(reader.messages())
    assert [t for _, t, _ in rows] == [1_000, 1_001, 1_002]
    back = typestore.deserialize_cdr(rows[-1][2], "tr2/msg/SceneGraph")
    _assert_equal(msg, back, typestore, "tr2/msg/SceneGraph")


# --------------------------------------------------------------------------
# The official ROS 2 parser (Debian's rosidl tools).

ROSIDL_HINT = (
    "rosidl tools not installed: run `bash scripts/install_ros_tools.sh` as root (Debian/Ubuntu:"
    " apt-get install rosidl-tools python3-rosidl python3-catkin-pkg python3-empy)"
)

# Run by the system Python (which has rosidl_parser): parse .idl files and
# print {type: {"fields": [[name, type]], "constants": [[name, type, value]]}}.
_PARSE_IDL = r"""
import json, sys, pathlib
from rosidl_parser.parser import parse_idl_file
from rosidl_parser.definition import (IdlLocator, Message, BasicType, NamespacedType, Array,
    UnboundedSequence, BoundedSequence, UnboundedString, BoundedString)
BASIC = {"float": "float32", "double": "float64", "boolean": "bool", "octet": "byte"}
def norm(t):
    if isinstance(t, BasicType):
        return BASIC.get(t.typename, t.typename)
    if isinstance(t, UnboundedString):
        return "string"
    if isinstance(t, BoundedString):
        return "string<=%d" % t.maximum_size
    if isinstance(t, NamespacedType):
        return "/".join(list(t.namespaces) + [t.name])
    if isinstance(t, Array):
        return "%s[%d]" % (norm(t.value_type), t.size)
    if isinstance(t, UnboundedSequence):
        return norm(t.value_type) + "[]"
    if isinstance(t, BoundedSequence):
        return "%s[<=%d]" % (norm(t.value_type), t.maximum_size)
    raise TypeError(repr(t))
root = pathlib.Path(sys.argv[1])
out = {}
for path in sorted(root.rglob("*.idl")):
    idl = parse_idl_file(IdlLocator(root, path.relative_to(root)))
    for message in idl.content.get_elements_of_type(Message):
        name = "/".join(message.structure.namespaced_type.namespaced_name())
        out[name] = {
            "fields": [[m.name, norm(m.type)] for m in message.structure.members],
            "constants": [[c.name, norm(c.type), c.value] for c in message.constants],
        }
print(json.dumps(out))
"""


def _rosbags_type(node) -> str:
    kind, detail = node
    if kind.name == "BASE":
        name, bound = detail
        return f"{name}<={bound}" if bound else name
    if kind.name == "NAME":
        return detail
    if kind.name == "ARRAY":
        return f"{_rosbags_type(detail[0])}[{detail[1]}]"
    if kind.name == "SEQUENCE":
        bound = detail[1]
        return f"{_rosbags_type(detail[0])}[{f'<={bound}' if bound else ''}]"
    raise TypeError(kind)


@pytest.fixture(scope="module")
def rosidl_parsed(tmp_path_factory):
    rosidl = shutil.which("rosidl")
    system_python = Path("/usr/bin/python3")
    if rosidl is None or not system_python.exists():
        pytest.skip(ROSIDL_HINT)
    probe = subprocess.run(
        [str(system_python), "-c", "import rosidl_parser.parser, rosidl_adapter, em, catkin_pkg"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"{ROSIDL_HINT} [{probe.stderr.decode().strip().splitlines()[-1]}]")
    out = tmp_path_factory.mktemp("idl")
    packages = {
        "tr2": (ROOT, [f"msg/{n}.msg" for n in MESSAGE_NAMES]),
        "std_msgs": (FIXTURES / "std_msgs", ["msg/Header.msg"]),
        "builtin_interfaces": (FIXTURES / "builtin_interfaces", ["msg/Time.msg"]),
    }
    for package, (base, files) in packages.items():
        run = subprocess.run(
            [rosidl, "translate", "--to", "idl", "-o", str(out / package), package]
            + [f"{base}:{f}" for f in files],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, f"rosidl translate rejected {package}:\n{run.stderr}"
    parsed = subprocess.run(
        [str(system_python), "-c", _PARSE_IDL, str(out)], capture_output=True, text=True
    )
    assert parsed.returncode == 0, f"rosidl_parser rejected the IDL:\n{parsed.stderr}"
    return json.loads(parsed.stdout)


def test_rosidl_parser_accepts_every_msg(rosidl_parsed):
    assert sorted(n for n in rosidl_parsed if n.startswith("tr2/")) == sorted(
        type_name(n) for n in MESSAGE_NAMES
    )


def test_rosidl_and_rosbags_agree_field_by_field(rosidl_parsed, typestore):
    for name in (type_name(n) for n in MESSAGE_NAMES):
        constants, fields = typestore.fielddefs[name]
        assert rosidl_parsed[name]["fields"] == [[f, _rosbags_type(t)] for f, t in fields], name
        assert rosidl_parsed[name]["constants"] == [[c, t, v] for c, t, v in constants], name


def test_rosidl_every_referenced_type_is_defined(rosidl_parsed):
    referenced = {
        re.sub(r"\[.*\]$", "", t)
        for definition in rosidl_parsed.values()
        for _, t in definition["fields"]
        if "/" in t
    }
    assert referenced <= set(rosidl_parsed), referenced - set(rosidl_parsed)
    assert {"std_msgs/msg/Header", "builtin_interfaces/msg/Time"} <= referenced


def test_fixture_definitions_match_rosbags(rosidl_parsed, typestore):
    # the hand-written fixture copies must be the real ROS 2 definitions
    for name in ("std_msgs/msg/Header", "builtin_interfaces/msg/Time"):
        _, fields = typestore.fielddefs[name]
        assert rosidl_parsed[name]["fields"] == [[f, _rosbags_type(t)] for f, t in fields]


# --------------------------------------------------------------------------
# Package files.


def test_package_xml_format3_and_interface_group():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "tr2"
    assert root.findtext("member_of_group") == "rosidl_interface_packages"
    assert root.findtext("export/build_type") == "ament_cmake"
    exec_depends = {e.text for e in root.iter("exec_depend")}
    assert {"rclpy", "sensor_msgs", "cv_bridge", "launch_ros", "rosidl_default_runtime"} <= (
        exec_depends
    )
    build = {e.text for e in root.iter("buildtool_depend")}
    assert {"ament_cmake", "rosidl_default_generators"} <= build
    depends = {e.text for e in root.iter("depend")}
    assert {"std_msgs", "builtin_interfaces"} <= depends


def test_package_xml_passes_catkin_pkg():
    system_python = Path("/usr/bin/python3")
    code = (
        "import sys; from catkin_pkg.package import parse_package;"
        " p = parse_package(sys.argv[1]); p.validate(); print(p.name, p.package_format)"
    )
    if not system_python.exists():
        pytest.skip("no /usr/bin/python3 with catkin_pkg: " + ROSIDL_HINT)
    run = subprocess.run(
        [str(system_python), "-c", code, str(ROOT)], capture_output=True, text=True
    )
    if "No module named 'catkin_pkg'" in run.stderr:
        pytest.skip("catkin_pkg missing: " + ROSIDL_HINT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["tr2", "3"]


def test_cmakelists_generates_every_msg_and_installs_python_packages():
    text = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r"^project\(tr2\)", text, re.M)
    block = re.search(r"rosidl_generate_interfaces\(\$\{PROJECT_NAME\}(.*?)\)", text, re.S)
    assert block, "rosidl_generate_interfaces call missing"
    listed = re.findall(r'"msg/(\w+)\.msg"', block.group(1))
    assert sorted(listed) == sorted(MESSAGE_NAMES)
    assert "DEPENDENCIES builtin_interfaces std_msgs" in block.group(1)
    installed = re.findall(r"ament_python_install_package\((\w+)\)", text)
    assert sorted(installed) == ["tr2_core", "tr2_ros"]
    # the naming trap (ros2/rosidl_python#141): no Python package named like the ROS package
    assert "tr2" not in installed and not (ROOT / "tr2" / "__init__.py").exists()
    assert re.search(
        r"install\(DIRECTORY launch config DESTINATION share/\$\{PROJECT_NAME\}\)", text
    )
    assert "DESTINATION lib/${PROJECT_NAME}" in text and "from tr2_ros.node import main" in text

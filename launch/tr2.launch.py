"""Launch the tr2 scene-graph node.

    ros2 launch tr2 tr2.launch.py checkpoint:=/path/to/tr2.pt \
        image:=/camera/color/image_raw namespace:=robot1 device:=cuda:0

Parameters come from ``params_file`` (default: the package's
``config/tr2.yaml``); ``checkpoint``, ``device`` and ``input_transport``
override it when given. Topics: the node's fixed names ``image``,
``scene_graph``, ``scene_graph/vocabulary`` and ``scene_graph/debug_image``
are remapped onto the launch arguments below (with
``input_transport:=compressed`` the node reads ``<image>/compressed``).
"""

# ruff: noqa: I001  (ruff takes ROS's `launch` for this launch/ folder)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "tr2"
EXECUTABLE = "tr2_node"
NODE_NAME = "tr2"

# Launch argument -> (node's internal topic name, default target).
TOPICS = {
    "image": ("image", "image"),
    "scene_graph": ("scene_graph", "scene_graph"),
    "vocabulary": ("scene_graph/vocabulary", "scene_graph/vocabulary"),
    "debug_image": ("scene_graph/debug_image", "scene_graph/debug_image"),
}
# Launch arguments that override the parameters file when not empty.
OVERRIDES = ("checkpoint", "device", "input_transport")


def _node(context, *args, **kwargs):
    overrides = {}
    for name in OVERRIDES:
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    remappings = []
    for argument, (internal, _default) in TOPICS.items():
        target = LaunchConfiguration(argument).perform(context)
        remappings.append((internal, target))
        if internal == "image":  # the compressed transport reads <image>/compressed
            remappings.append((f"{internal}/compressed", f"{target}/compressed"))
    return [
        Node(
            package=PACKAGE,
            executable=EXECUTABLE,
            name=NODE_NAME,
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), overrides],
            remappings=remappings,
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="Node namespace."),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "tr2.yaml"]),
            description="ROS 2 parameters file for the node.",
        ),
        DeclareLaunchArgument(
            "checkpoint", default_value="", description="TR2 checkpoint (.pt); overrides the file."
        ),
        DeclareLaunchArgument(
            "device", default_value="", description="cpu, cuda or cuda:N; overrides the file."
        ),
        DeclareLaunchArgument(
            "input_transport",
            default_value="",
            description="raw or compressed; overrides the file.",
        ),
    ]
    for argument, (internal, default) in TOPICS.items():
        arguments.append(
            DeclareLaunchArgument(
                argument,
                default_value=default,
                description=f"Topic the node's '{internal}' maps to.",
            )
        )
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])

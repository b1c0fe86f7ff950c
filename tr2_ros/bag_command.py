"""``tr2 bag``: add scene graphs to a rosbag2 offline (no ROS installation needed).

A ``tr2`` subcommand registered by tr2_ros through the ``tr2.commands`` entry
point group (pyproject.toml), so that the ROS-free ``tr2_core.cli`` never
imports tr2_ros.
"""

from __future__ import annotations

import argparse
import logging

from tr2_core.errors import ConfigError
from tr2_core.runners.engine_args import EngineRequest, add_engine_arguments, build_engine
from tr2_ros.bag import Detections, check_paths, open_bag, process_bag
from tr2_ros.detections import ClassMap

NAME = "bag"
MODES = ("sgdet", "predcls", "sgcls")
HELP = "run the streaming engine over a rosbag2 and write a bag with /scene_graph added"
DESCRIPTION = """\
Read a rosbag2 (sqlite3 or MCAP folder, or a bare .db3 / .mcap file) with
sensor_msgs/Image or sensor_msgs/CompressedImage messages on --image-topic, run
the streaming engine on every frame and write OUT: every original message
(same topics, types, definitions, QoS and bag timestamps) plus one
tr2/msg/SceneGraph per frame on /scene_graph (header copied from the image,
written at the image's bag time), the tr2/msg/Vocabulary once on
/scene_graph/vocabulary and, with --debug-image, the annotated frames.

Frames that cannot be decoded (unsupported encoding, truncated data) are
skipped, logged and counted. A corrupt or unreadable bag is an error and
leaves no OUT behind: the bag is written beside OUT and renamed when complete.

Examples:
  tr2 bag run.mcap_dir out_dir --image-topic /camera/image_raw --checkpoint best.pt
  tr2 bag in_bag out_bag --image-topic /camera/image_raw/compressed --checkpoint best.pt \\
      --debug-image --storage mcap --device cuda
  tr2 bag in_bag demo_out --image-topic /image --model tr2-small --random-init   # demo only
  tr2 bag in_bag out_bag --image-topic /camera/image_raw --checkpoint best.pt \\
      --mode predcls --detections-topic /yolo/detections --class-map config/class_map_coco.yaml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="input bag folder, or a .db3 / .mcap file")
    parser.add_argument("output", metavar="OUT", help="output bag folder (must not exist)")
    parser.add_argument(
        "--image-topic",
        required=True,
        metavar="TOPIC",
        help="topic of sensor_msgs/Image or sensor_msgs/CompressedImage messages",
    )
    parser.add_argument("--graph-topic", default="/scene_graph", metavar="TOPIC")
    parser.add_argument("--vocabulary-topic", default="/scene_graph/vocabulary", metavar="TOPIC")
    parser.add_argument(
        "--debug-image",
        action="store_true",
        help="also write the annotated frames (sensor_msgs/Image rgb8) on --debug-topic",
    )
    parser.add_argument("--debug-topic", default="/scene_graph/debug_image", metavar="TOPIC")
    parser.add_argument(
        "--storage",
        choices=("sqlite3", "mcap"),
        help="storage of the output bag (default: the input's)",
    )
    parser.add_argument(
        "--distro",
        default="humble",
        help="ROS 2 distribution whose standard message definitions fill in types the "
        "input bag carries no definition for (default humble)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace OUT (once the new bag is complete)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    given = parser.add_argument_group("entities from the robot's detector (--mode predcls / sgcls)")
    given.add_argument(
        "--detections-topic",
        metavar="TOPIC",
        help="vision_msgs/Detection2DArray topic in IN, matched to the images by header stamp",
    )
    given.add_argument(
        "--class-map",
        metavar="YAML",
        help="detector class ids -> Action Genome classes (e.g. config/class_map_coco.yaml);"
        " default: the detector's class ids are Action Genome names",
    )
    given.add_argument(
        "--detections-tolerance",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="largest stamp difference between an image and its detections (default 0: exact)",
    )
    add_engine_arguments(parser, modes=MODES)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from pathlib import Path

    from tqdm.contrib.logging import logging_redirect_tqdm

    request = EngineRequest.from_args(args)
    request.validate(MODES)  # cheap checks before the slow model build
    detections = None
    if (request.options.mode == "sgdet") != (args.detections_topic is None):
        raise ConfigError(
            "--mode predcls / sgcls take the entities from --detections-topic, and"
            " --detections-topic needs one of them (sgdet finds its own)"
        )
    if args.detections_tolerance < 0:
        raise ConfigError(f"--detections-tolerance {args.detections_tolerance}: must be >= 0")
    if args.detections_topic is not None:
        class_map = ClassMap.load(args.class_map) if args.class_map else ClassMap.action_genome()
        detections = Detections(
            args.detections_topic, class_map, int(round(args.detections_tolerance * 1e9))
        )
    check_paths(Path(args.input), Path(args.output), overwrite=args.overwrite)
    reader, _ = open_bag(
        Path(args.input),
        args.image_topic,
        [args.graph_topic, args.vocabulary_topic, args.debug_topic if args.debug_image else None],
    )
    reader.close()  # readable, topic checked: now the slow model build
    engine = build_engine(request, MODES)
    with logging_redirect_tqdm():
        report = process_bag(
            args.input,
            args.output,
            engine,
            args.image_topic,
            graph_topic=args.graph_topic,
            vocabulary_topic=args.vocabulary_topic or None,
            debug_topic=args.debug_topic if args.debug_image else None,
            storage=args.storage,
            distro=args.distro,
            relation_threshold=request.options.relation_threshold,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            detections=detections,
        )
    print(report.summary())
    return 130 if report.interrupted else 0

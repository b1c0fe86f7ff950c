"""Offline tools around the streaming engine, ROS-free (no rclpy):

* :mod:`~tr2_core.tools.bag`: rosbag2 in (sqlite3 or MCAP), the same bag plus
  ``/scene_graph`` out (``tr2 bag``); uses :mod:`tr2_ros.conversions` and
  :mod:`tr2_ros.messages`, which need only rosbags.
* :mod:`~tr2_core.tools.video`: a video file or a folder of images in, one JSON
  line per frame and an annotated video out (``tr2 video``).
* :mod:`~tr2_core.tools.engine_args`: the engine options both commands share.
* :mod:`~tr2_core.tools.staging`: outputs written beside their final path and
  renamed into place only when complete.
"""

"""Offline tools around the streaming engine, ROS-free:

* :mod:`~tr2_core.tools.video`: a video file or a folder of images in, one JSON
  line per frame and an annotated video out (``tr2 video``).
* :mod:`~tr2_core.tools.records`: a decoded scene graph as a JSON line.
* :mod:`~tr2_core.tools.engine_args`: the engine flags of ``tr2 video`` and
  ``tr2 bag``, generated from :class:`~tr2_core.stream.options.EngineOptions`.

The rosbag tool (``tr2 bag``) writes ROS messages, so it lives in
``tr2_ros/bag.py``.
"""

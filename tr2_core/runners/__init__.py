"""The offline runners of the streaming engine, ROS-free: what runs it over recorded
input instead of a live camera.

* :mod:`~tr2_core.runners.video_runner`: a video file or a folder of images in, one JSON
  line per frame and an annotated video out (``tr2 video``).
* :mod:`~tr2_core.runners.records`: a decoded scene graph as a JSON line.
* :mod:`~tr2_core.runners.engine_args`: the engine flags of ``tr2 video`` and
  ``tr2 bag``, generated from :class:`~tr2_core.stream.engine_options.EngineOptions`.

The rosbag tool (``tr2 bag``) writes ROS messages, so it lives in
``tr2_ros/bag.py``.
"""

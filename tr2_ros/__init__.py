"""ROS 2 side of tr2: the ``tr2`` node (:mod:`tr2_ros.node`, the only module
that needs rclpy) over ROS-free, tested parts: message classes
(:mod:`~tr2_ros.messages`), conversions, drop policy, parameters, the frame
pipeline (the debug overlay it draws lives in :mod:`tr2_core.viz.overlay`),
and the offline rosbag tool ``tr2 bag`` (:mod:`~tr2_ros.bag`, rosbags only)."""

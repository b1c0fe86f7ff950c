"""Drawing scene graphs on frames (NumPy + PIL): the ROS node's debug image,
``tr2 bag --debug-image`` and ``tr2 video --overlay``."""

"""tr2_core: TR² dynamic scene graph generation, Action Genome data and evaluation.

Never imports rclpy; the ROS 2 node lives in :mod:`tr2_ros`.
"""

__version__ = "0.1.0"

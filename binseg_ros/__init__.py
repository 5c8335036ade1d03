"""binseg_ros: multimodal (RGB + depth + thermal) binary segmentation for ROS 2 robots.

The package is a ROS-free core (model, engines, backends, preprocessing) with thin adapters
around it; nothing under this top-level import pulls in rclpy, torch or onnxruntime.
"""

from __future__ import annotations

__version__ = "0.1.0"

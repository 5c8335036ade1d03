"""Rig calibration: each camera's intrinsics (``camera_info``) and how it maps into the reference camera.

Read at the boundary (a rig file, or ``camera_info`` topics), validated once, and handed to
:mod:`binseg_ros.core.registration` as plain arrays.
"""

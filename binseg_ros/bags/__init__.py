"""Rosbag2 tooling without a ROS install: make bags from datasets, evaluate and replay them."""

"""The ROS-free runtime: frames in, masks and counters out.

decode → :class:`~binseg_ros.core.sync.Synchronizer` → latest-wins worker →
:class:`~binseg_ros.core.segmenter.Segmenter` (preprocess → backend → postprocess), held
together by :class:`~binseg_ros.core.runtime.SegmentationRuntime`. The node and the bag
evaluator are thin adapters around it, so a frame gives the same mask through either.
Nothing here imports rclpy.
"""

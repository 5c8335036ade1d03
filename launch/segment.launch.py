"""ros2 launch binseg_ros segment.launch.py [namespace:=robot] [backend:=onnxruntime] ...

Starts segment_node with config/segment.yaml; launch arguments override the engine, the
backend, sim time, the three input topics and their transports (a ``*_transport`` of
``compressed`` / ``compressedDepth`` subscribes to ``<topic>/compressed`` / ``<topic>/compressedDepth``,
as image_transport names them, e.g. ``rgb_topic:=/camera/color/image_raw rgb_transport:=compressed``).
``lifecycle:=true`` makes it a managed node (lifecycle_msgs services); with ``autostart:=false`` it
then waits, unconfigured, for a lifecycle manager to configure and activate it.
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description() -> LaunchDescription:
    share = Path(get_package_share_directory("binseg_ros"))
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("params_file", default_value=str(share / "config" / "segment.yaml"),
                              description="parameters file"),
        DeclareLaunchArgument("backend", default_value="auto", description="auto | onnxruntime | torch | tensorrt"),
        DeclareLaunchArgument("engine_dir", default_value="", description="engine folder ('' = installed model)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (rosbag replay)"),
        DeclareLaunchArgument("rgb_topic", default_value="rgb/image", description="RGB image topic"),
        DeclareLaunchArgument("depth_topic", default_value="depth/image", description="depth image topic"),
        DeclareLaunchArgument("thermal_topic", default_value="thermal/image", description="thermal image topic"),
        DeclareLaunchArgument("rgb_transport", default_value="raw", description="raw | compressed"),
        DeclareLaunchArgument("depth_transport", default_value="raw", description="raw | compressed | compressedDepth"),
        DeclareLaunchArgument("thermal_transport", default_value="raw",
                              description="raw | compressed | compressedDepth"),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="managed node: offer the lifecycle_msgs services (configure, activate, ...)"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="with lifecycle: configure and activate at start, without a manager"),
    ]
    node = Node(
        package="binseg_ros",
        executable="segment_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "backend": LaunchConfiguration("backend"),
                "engine_dir": LaunchConfiguration("engine_dir"),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                "rgb.transport": LaunchConfiguration("rgb_transport"),
                "depth.transport": LaunchConfiguration("depth_transport"),
                "thermal.transport": LaunchConfiguration("thermal_transport"),
                "lifecycle": ParameterValue(LaunchConfiguration("lifecycle"), value_type=bool),
                "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
            },
        ],
        remappings=[
            ("rgb/image", LaunchConfiguration("rgb_topic")),
            ("depth/image", LaunchConfiguration("depth_topic")),
            ("thermal/image", LaunchConfiguration("thermal_topic")),
        ],
    )
    return LaunchDescription([*arguments, node])

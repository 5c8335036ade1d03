"""ros2 launch binseg_ros segment.launch.py [namespace:=robot] [backend:=onnxruntime] ...

Starts segment_node with config/segment.yaml; launch arguments override the engine, the
backend, sim time and the three input topics.
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
            },
        ],
        remappings=[
            ("rgb/image", LaunchConfiguration("rgb_topic")),
            ("depth/image", LaunchConfiguration("depth_topic")),
            ("thermal/image", LaunchConfiguration("thermal_topic")),
        ],
    )
    return LaunchDescription([*arguments, node])

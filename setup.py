"""ament_python package definition: works under colcon and under a plain ``pip install``."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "binseg_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="binseg_ros maintainers",
    maintainer_email="binseg-maintainers@example.com",
    description="Multimodal RGB-D-T binary segmentation node with missing-sensor fallback",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "binseg = binseg_ros.cli:main",
            "segment_node = binseg_ros.ros.node:main",
        ],
    },
)

"""ament_python package definition: works under colcon and under a plain ``pip install``."""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "binseg_ros"


def engine_folders() -> list[tuple[str, list[str]]]:
    """Every exported engine folder (one with a manifest) goes to share/binseg_ros/engines/."""
    return [
        (f"share/{PACKAGE}/engines/{Path(manifest).parent.name}", sorted(glob(str(Path(manifest).parent / "*.*"))))
        for manifest in sorted(glob("engines/*/manifest.yaml"))
    ]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={
        PACKAGE: [
            "py.typed",
            "sample/*.md",
            "sample/*/*.png",
            "training/splits/*.yaml",
            "kernels/*.cu",
            "kernels/*.h",
            "kernels/*.cpp",
        ]
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/calibration/example", glob("calibration/example/*.yaml")),
        *engine_folders(),
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
            "segment_node = binseg_ros.ros.segment_node:main",
        ],
    },
)

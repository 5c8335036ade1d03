"""``python -m binseg_ros.cli``: the ``binseg`` console script where it is not on PATH (tests, a
checkout used without installing), with the same exit codes."""

from __future__ import annotations

import sys

from binseg_ros.cli import main

if __name__ == "__main__":
    sys.exit(main())

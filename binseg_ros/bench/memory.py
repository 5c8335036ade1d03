"""A process's resident memory as Linux reports it (``/proc``): how much, of which kind, where.

The soak samples the node with it; kept apart from the player because reading ``/proc`` has
nothing to do with ROS, and a growth found by one run is only useful if it says where it sits.
"""

from __future__ import annotations

import math
from pathlib import Path


def memory_mib(pid: int) -> dict[str, float]:
    """Process ``pid``'s resident memory (Linux ``/proc``), MiB: ``rss`` and its parts ``anon``
    (heap and stacks: where a leak grows), ``file`` (mapped libraries and files) and ``shmem``
    (shared memory, which DDS's shared-memory transport fills page by page as it uses its
    segments); NaN for what there is none to read."""
    fields = {"rss": "VmRSS", "anon": "RssAnon", "file": "RssFile", "shmem": "RssShmem"}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        lines = []
    values = dict(line.split(":", 1) for line in lines if ":" in line)  # "VmRSS" -> "  359888 kB"
    return {name: int(values[key].split()[0]) / 1024 if key in values else math.nan for name, key in fields.items()}


def anonymous_mappings(pid: int) -> dict[str, float]:
    """Process ``pid``'s anonymous memory by mapping (``/proc/<pid>/smaps``): resident MiB keyed
    by start address and name (``[heap]``, ``[anon]``), so that growth can be put on a mapping:
    the main heap, a thread's malloc arena, a runtime's own pool. Empty when there is none to read."""
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return {}
    resident: dict[str, float] = {}
    mapping = None
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        if "-" in fields[0] and not fields[0].endswith(":"):  # "start-end perms offset dev inode [name]"
            name = fields[5] if len(fields) > 5 else "[anon]"
            mapping = f"{fields[0].split('-')[0]} {name}" if name == "[heap]" or name.startswith("[anon") else None
        elif mapping is not None and fields[0] == "Rss:":
            resident[mapping] = int(fields[1]) / 1024
    return resident

"""RuntimeStatus → ``diagnostic_msgs/DiagnosticArray`` (one status per modality + one overall)."""

from __future__ import annotations

import math

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from binseg_ros.modalities import Subset
from binseg_ros.runtime import RuntimeStatus
from binseg_ros.sync import Health

LEVELS = {Health.OK: DiagnosticStatus.OK, Health.RECOVERING: DiagnosticStatus.WARN, Health.STALE: DiagnosticStatus.STALE}


def _name(subset: Subset) -> str:
    return "+".join(subset) if subset else "none"


def _kv(values: dict[str, object]) -> list[KeyValue]:
    return [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in values.items()]


def build_diagnostics(
    status: RuntimeStatus, node_name: str, stamp: Time, subscribed: Subset, topics: dict[str, str], backend: str
) -> DiagnosticArray:
    """Per-modality OK / RECOVERING / STALE, and the overall state with rates and counters.

    The overall level is OK with every subscribed modality active, WARN while falling back
    to fewer, and ERROR when a required modality is missing or none is alive.
    """
    statuses = []
    for modality in subscribed:
        health = status.health[modality]
        statuses.append(
            DiagnosticStatus(
                level=LEVELS[health],
                name=f"{node_name}: {modality}",
                message=health.value,
                hardware_id=topics[modality],
                values=_kv(
                    {
                        "frames_in": status.frames_in[modality],
                        "rate_hz": status.input_rate[modality],
                        "active": modality in status.active,
                    }
                ),
            )
        )
    missing = [m for m in subscribed if m not in status.active]
    if status.required_missing or not status.active:
        level, message = DiagnosticStatus.ERROR, (
            f"required modality missing: {_name(status.required_missing)}" if status.required_missing
            else "no modality alive"
        )
    elif missing:
        level, message = DiagnosticStatus.WARN, f"fallback to {_name(status.active)} ({_name(tuple(missing))} stale)"
    else:
        level, message = DiagnosticStatus.OK, f"running on {_name(status.active)}"
    summary = {
        "active_subset": _name(status.active),
        "last_mask_subset": _name(status.last_subset),
        "backend": backend,
        "output_rate_hz": status.output_rate,
        "latency_p50_ms": status.latency_p50 * 1e3 if not math.isnan(status.latency_p50) else "n/a",
        "latency_p95_ms": status.latency_p95 * 1e3 if not math.isnan(status.latency_p95) else "n/a",
        "sets": status.sets,
        "masks": status.masks,
        **{f"frames_in.{m}": status.frames_in[m] for m in subscribed},
        **{f"drops.{reason}": count for reason, count in sorted(status.drops.items())},
        **{f"sanitized.{reason}": count for reason, count in sorted(status.sanitized.items())},
        **{f"published.{name}": count for name, count in sorted(status.published.items())},
    }
    statuses.append(
        DiagnosticStatus(level=level, name=f"{node_name}: segmentation", message=message, hardware_id="", values=_kv(summary))
    )
    return DiagnosticArray(header=Header(stamp=stamp), status=statuses)

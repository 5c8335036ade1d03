"""RuntimeStatus → ``diagnostic_msgs/DiagnosticArray`` (one status per modality + one overall).

A sensor that publishes but fails the quality gate is WARN ("rgb degraded: underexposed")
until it is readmitted; a sensor that keeps missing sets (a flapping driver or link) is WARN
with its miss rate while the synchroniser benches it; a sensor whose driver sent bad stamps in
the last seconds is WARN ("rgb bad stamps: ..."), whatever else it is; and the overall status
names the subset that runs without the degraded and the benched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from binseg_ros.core.runtime import RECENT_S, RuntimeStatus
from binseg_ros.core.sync import Health
from binseg_ros.modalities import Subset, canonical, subset_name

LEVELS = {
    Health.OK: DiagnosticStatus.OK,
    Health.RECOVERING: DiagnosticStatus.WARN,
    Health.STALE: DiagnosticStatus.STALE,
}


def _key_values(values: Mapping[str, object]) -> list[KeyValue]:
    return [KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in values.items()]


def build_diagnostics(
    status: RuntimeStatus, node_name: str, stamp: Time, subscribed: Subset, topics: dict[str, str], backend: str
) -> DiagnosticArray:
    """Per-modality OK / RECOVERING / STALE, and the overall state with rates and counters."""
    statuses = [_sensor(status, node_name, modality, topics[modality]) for modality in subscribed]
    level, message = _overall(status, subscribed)
    summary = {
        "active_subset": subset_name(status.active),
        "running_subset": subset_name(status.running),
        "last_mask_subset": subset_name(status.last_subset),
        "backend": backend,
        "output_rate_hz": status.output_rate,
        "latency_p50_ms": status.latency_p50 * 1e3 if not math.isnan(status.latency_p50) else "n/a",
        "latency_p95_ms": status.latency_p95 * 1e3 if not math.isnan(status.latency_p95) else "n/a",
        "sets": status.sets,
        "frames_in_sets": status.frames_in_sets,
        "masks": status.masks,
        **{f"frames_in.{m}": status.frames_in[m] for m in subscribed},
        **{f"drops.{reason}": count for reason, count in sorted(status.drops.items())},
        **{f"sanitized.{reason}": count for reason, count in sorted(status.sanitized.items())},
        **{f"degraded.{key}": count for key, count in sorted(status.degraded_frames.items())},
        **{f"published.{name}": count for name, count in sorted(status.published.items())},
        **{f"clock_jumps.{m}": count for m, count in status.clock_jumps.items() if m in subscribed},
    }
    statuses.append(
        DiagnosticStatus(
            level=level, name=f"{node_name}: segmentation", message=message, hardware_id="", values=_key_values(summary)
        )
    )
    return DiagnosticArray(header=Header(stamp=stamp), status=statuses)


def _degraded(status: RuntimeStatus, modality: str) -> str:
    return f"{modality} degraded: {status.degraded[modality]}"


def _missing_sets(status: RuntimeStatus, modality: str) -> str:
    """``"missed 80 of 180 sets (44%)"``: over the whole run, from the synchroniser's counters."""
    misses = status.misses[modality]
    return f"missed {misses.missed} of {misses.expected} sets ({misses.missed / max(1, misses.expected):.0%})"


def _recently_missed(status: RuntimeStatus, modality: str) -> str | None:
    """``"thermal missed 28 of 60 sets in the last 2 s (47%)"`` for an OK sensor that keeps missing
    sets between its returns (a flap faster than the synchroniser's bench shows), else None."""
    recent = status.recent_misses[modality]
    if status.health[modality] is not Health.OK or modality in status.degraded or not recent.missed:
        return None
    share = recent.missed / max(1, recent.expected)
    last = f"the last {status.miss_span:.0f} s"
    return f"{modality} missed {recent.missed} of {recent.expected} sets in {last} ({share:.0%})"


def _sensor(status: RuntimeStatus, node_name: str, modality: str, topic: str) -> DiagnosticStatus:
    """The synchroniser's health; an OK sensor the quality gate leaves out, or one that missed
    sets lately, is WARN, with why."""
    health = status.health[modality]
    level, message = LEVELS[health], health.value
    if health is Health.OK and modality in status.degraded:
        level, message = DiagnosticStatus.WARN, _degraded(status, modality)
    elif health is Health.RECOVERING and status.misses[modality].missed:
        message = f"{health.value}: {_missing_sets(status, modality)}"
    elif (missed := _recently_missed(status, modality)) is not None:
        level, message = DiagnosticStatus.WARN, missed
    level, message = _bad_stamps(status, modality, level, message)
    values = {
        "frames_in": status.frames_in[modality],
        "missed_sets": status.misses[modality].missed,
        "expected_sets": status.misses[modality].expected,
        "rate_hz": status.input_rate[modality],
        "active": modality in status.active,
        "degraded": status.degraded.get(modality, "no"),
        "bad_stamps": status.bad_stamps[modality],
        "clock_jumps": status.clock_jumps.get(modality, 0),
    }
    return DiagnosticStatus(
        level=level, name=f"{node_name}: {modality}", message=message, hardware_id=topic, values=_key_values(values)
    )


def _bad_stamps(status: RuntimeStatus, modality: str, level: bytes, message: str) -> tuple[bytes, str]:
    """At least WARN while the sensor's driver sends bad stamps, the count added to what else it says
    (an OK sensor has nothing else to say)."""
    recent = status.recent_bad_stamps[modality]
    if not recent:
        return level, message
    note = f"{modality} bad stamps: {recent} in the last {RECENT_S:g} s"
    return max(level, DiagnosticStatus.WARN), note if message == Health.OK.value else f"{message}; {note}"


def _overall(status: RuntimeStatus, subscribed: Subset) -> tuple[bytes, str]:
    """OK with every subscribed modality running and in its sets, WARN while falling back to
    fewer (stale, or left out by the quality gate) or while one keeps missing sets, ERROR when a
    required modality is missing or none runs."""
    stale = canonical(m for m in subscribed if status.health[m] is Health.STALE)
    returning = [
        f"{m} {_missing_sets(status, m) if status.misses[m].missed else 'recovering'}"
        for m in subscribed
        if status.health[m] is Health.RECOVERING
    ]
    degraded = [_degraded(status, m) for m in status.active if m in status.degraded]
    missing = [missed for m in subscribed if (missed := _recently_missed(status, m)) is not None]
    why = "; ".join(([f"{subset_name(stale)} stale"] if stale else []) + returning + degraded + missing)
    because = f" ({why})" if why else ""
    if status.required_missing:
        return DiagnosticStatus.ERROR, f"required modality missing: {subset_name(status.required_missing)}{because}"
    if not status.active:
        return DiagnosticStatus.ERROR, "no modality alive"
    if not status.running:
        return DiagnosticStatus.ERROR, f"no usable modality{because}"
    if why:
        lead = "running on" if status.running == canonical(subscribed) else "fallback to"
        return DiagnosticStatus.WARN, f"{lead} {subset_name(status.running)}{because}"
    return DiagnosticStatus.OK, f"running on {subset_name(status.running)}"


def calibration_status(node_name: str, source: str, missing: Sequence[str], status: RuntimeStatus) -> DiagnosticStatus:
    """The rig calibration: ERROR while a camera_info the node needs has not arrived (it
    publishes nothing then) or while a camera's images contradict its calibration, else OK."""
    mismatch = [
        f"{m} images are {got[1]}x{got[0]}, its calibration says {want[1]}x{want[0]}"
        for m, (want, got) in sorted(status.mismatched.items())
    ]
    if missing:
        level, message = DiagnosticStatus.ERROR, f"calibration incomplete: waiting for {', '.join(missing)}"
    elif mismatch:
        level, message = DiagnosticStatus.ERROR, "; ".join(mismatch)
    else:
        level, message = DiagnosticStatus.OK, f"registered into the reference camera ({source})"
    return DiagnosticStatus(level=level, name=f"{node_name}: calibration", message=message, hardware_id=source)

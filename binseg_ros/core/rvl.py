"""RVL, the lossless 16-bit depth codec of ``compressed_depth_image_transport`` (``... rvl``).

Wilson's "Fast Lossless Depth Image Compression" (SIGCHI'17) as image_transport_plugins
writes it (``rvl_codec.cpp``): the pixels, row-major, alternate between a run of zeros and a
run of non-zero values. Each run pair is coded as (zero count, non-zero count, then one
zig-zagged delta per non-zero pixel from the previous non-zero pixel, the first from 0).
Every number is a variable-length code of 4-bit nibbles, 3 value bits each, least significant
group first, the high bit set while more follow. Nibbles fill 32-bit words from the most
significant end, 8 per word; the last word is zero-padded; words are little-endian on the
wire (the codec writes host ``int``s and every ROS 2 platform is little-endian).

Both directions are vectorised with numpy except the walk over run pairs, which is a Python
loop over runs (not pixels): a 640x480 depth image with holes has a few thousand.
"""

from __future__ import annotations

import numpy as np

MAX_PIXELS = 1 << 26  # a sanity cap: the header of a corrupt message may claim any size
_MAX_NIBBLES = 11  # 33 value bits: more than any count or delta of a valid stream
_SHIFTS = np.arange(28, -1, -4, dtype=np.uint32)  # nibble i of a word sits at bits 28 - 4i


class RvlError(ValueError):
    """A stream that does not decode to exactly the pixels its header announced."""


def encode(pixels: np.ndarray) -> bytes:
    """The RVL stream of ``pixels`` (any shape, uint16), without the width/height prefix."""
    flat = np.ascontiguousarray(pixels, np.uint16).reshape(-1).astype(np.int64)
    if flat.size == 0:
        return b""
    zeros, nonzeros = _runs(flat != 0)
    values = flat[flat != 0]
    deltas = np.diff(values, prepend=0)
    zigzag = (deltas << 1) ^ (deltas >> 63)
    # Run pair i starts at 2 i + (the non-zero pixels before it); the deltas fill the gaps in order.
    heads = 2 * np.arange(zeros.size) + np.concatenate(([0], np.cumsum(nonzeros)[:-1]))
    sequence = np.empty(2 * zeros.size + values.size, np.int64)
    is_delta = np.ones(sequence.size, bool)
    is_delta[heads] = is_delta[heads + 1] = False
    sequence[heads], sequence[heads + 1], sequence[is_delta] = zeros, nonzeros, zigzag
    return _pack(_nibbles(sequence))


def decode(stream: bytes | np.ndarray, count: int) -> np.ndarray:
    """``count`` uint16 pixels (flat) from an RVL stream.

    Raises:
        RvlError: the stream ends early, overruns ``count``, or holds an impossible code.
    """
    if not 0 < count <= MAX_PIXELS:
        raise RvlError(f"RVL image of {count} pixels (expected 1 to {MAX_PIXELS})")
    values = _values(np.frombuffer(stream, np.uint8))
    zeros, nonzeros, delta_at = _walk(values, count)
    deltas = values[delta_at]
    current = np.cumsum((deltas >> 1) ^ -(deltas & 1)) & 0xFFFF  # the codec's unsigned short wraps
    lengths = np.column_stack((zeros, nonzeros)).reshape(-1)
    is_value = np.repeat(np.tile([False, True], zeros.size), lengths)
    out = np.zeros(count, np.uint16)
    out[is_value] = current
    return out


def _runs(nonzero: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(zero-run lengths, non-zero-run lengths), paired: a pair starts with zeros, maybe none."""
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(nonzero.astype(np.int8))) + 1, [nonzero.size]))
    lengths = np.diff(bounds)
    if nonzero[0]:
        lengths = np.concatenate(([0], lengths))
    if lengths.size % 2:
        lengths = np.concatenate((lengths, [0]))
    return lengths[0::2], lengths[1::2]


def _nibbles(values: np.ndarray) -> np.ndarray:
    """The variable-length code of every value, concatenated: 3 bits a nibble, low bits first."""
    count = np.ones(values.size, np.int64)
    for group in range(1, _MAX_NIBBLES):
        count += (values >> (3 * group)) > 0
    starts = np.concatenate(([0], np.cumsum(count)[:-1]))
    owner = np.repeat(np.arange(values.size), count)
    group = np.arange(owner.size) - starts[owner]
    more = group < count[owner] - 1
    return (((values[owner] >> (3 * group)) & 0x7) | (more.astype(np.int64) << 3)).astype(np.uint32)


def _pack(nibbles: np.ndarray) -> bytes:
    """Nibbles into little-endian 32-bit words, first nibble in the top bits, zero-padded."""
    padded = np.zeros(-(-nibbles.size // 8) * 8, np.uint32)
    padded[: nibbles.size] = nibbles
    words = np.bitwise_or.reduce(padded.reshape(-1, 8) << _SHIFTS, axis=1)
    return words.astype("<u4").tobytes()


def _values(data: np.ndarray) -> np.ndarray:
    """Every complete variable-length value in the stream (a trailing partial one is padding)."""
    if data.size % 4:
        data = np.concatenate((data, np.zeros(4 - data.size % 4, np.uint8)))
    words = data.view("<u4").astype(np.uint32)
    nibbles = ((words[:, None] >> _SHIFTS) & 0xF).reshape(-1)
    ends = np.flatnonzero((nibbles & 0x8) == 0)
    if ends.size == 0:
        raise RvlError("RVL stream holds no complete value")
    starts = np.concatenate(([0], ends[:-1] + 1))
    if int((ends - starts).max()) >= _MAX_NIBBLES:
        raise RvlError(f"RVL value longer than {_MAX_NIBBLES} nibbles")
    group = np.arange(ends[-1] + 1) - np.repeat(starts, ends - starts + 1)
    contributions = (nibbles[: ends[-1] + 1] & 0x7).astype(np.int64) << (3 * group)
    return np.add.reduceat(contributions, starts)


def _walk(values: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(zero runs, non-zero runs, index of every delta in ``values``) until ``count`` pixels."""
    listed = values.tolist()
    zeros: list[int] = []
    nonzeros: list[int] = []
    firsts: list[int] = []
    position = filled = 0
    while filled < count:
        if position + 2 > len(listed):
            raise RvlError(f"RVL stream ends after {filled} of {count} pixels")
        zero_run, value_run = listed[position], listed[position + 1]
        filled += zero_run + value_run
        if filled > count:
            raise RvlError(f"RVL runs overrun the {count} pixels of the image")
        zeros.append(zero_run)
        nonzeros.append(value_run)
        firsts.append(position + 2)
        position += 2 + value_run
    if position > len(listed):
        raise RvlError(f"RVL stream ends inside a run of {nonzeros[-1]} values")
    runs = np.array(nonzeros, np.int64)
    delta_at = np.repeat(np.array(firsts, np.int64) - np.cumsum(runs) + runs, runs) + np.arange(int(runs.sum()))
    return np.array(zeros, np.int64), runs, delta_at

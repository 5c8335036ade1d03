"""Which sub-modal subset a training step drops to: harder subsets are drawn more often.

Uniform dropout gives every proper subset the same number of steps, yet they are not equally
hard: on MM5 the thermal-only loss stays several times the rgb-only one, so uniform steps
leave the weakest sensor the least trained relative to its need. The sampler keeps an
exponential moving average of each subset's segmentation loss and draws a subset with
probability ``floor / n + (1 - floor) * ema / sum(ema)``: the uniform share keeps every
subset trained, the loss share moves steps to the subsets that still lag (the balance
EQUISeg asks for, applied to the schedule rather than to a loss weight).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from binseg_ros.modalities import Subset, subset_name


class SubsetSampler:
    """Loss-proportional subset draws; its state is saved with the training state for resume."""

    def __init__(self, subsets: Sequence[Subset], momentum: float = 0.9, floor: float = 0.5) -> None:
        if not subsets:
            raise ValueError("SubsetSampler needs at least one subset")
        if not 0.0 <= floor <= 1.0 or not 0.0 <= momentum < 1.0:
            raise ValueError(f"need 0 <= floor <= 1 and 0 <= momentum < 1, got {floor=} {momentum=}")
        self.subsets = list(subsets)
        self.momentum = momentum
        self.floor = floor
        self.ema = {subset_name(s): 1.0 for s in self.subsets}

    def probabilities(self) -> dict[str, float]:
        """Current draw probability of each subset, by name."""
        total = sum(self.ema.values())
        share = self.floor / len(self.subsets)
        return {name: share + (1.0 - self.floor) * loss / total for name, loss in self.ema.items()}

    def draw(self, rng: random.Random) -> Subset:
        weights = list(self.probabilities().values())
        return rng.choices(self.subsets, weights=weights, k=1)[0]

    def update(self, subset: Subset, loss: float) -> None:
        """Fold one step's loss of ``subset`` into its moving average."""
        name = subset_name(subset)
        self.ema[name] = self.momentum * self.ema[name] + (1.0 - self.momentum) * float(loss)

    def state_dict(self) -> dict[str, float]:
        return dict(self.ema)

    def load_state_dict(self, state: dict[str, float]) -> None:
        if set(state) != set(self.ema):
            raise ValueError(f"sampler state has subsets {sorted(state)}, expected {sorted(self.ema)}")
        self.ema = {name: float(value) for name, value in state.items()}

"""Architecture hyper-parameters, stored in every checkpoint so it can be rebuilt exactly."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from binseg_ros.forms import FREQUENCY_FORMS, FrequencyForm
from binseg_ros.model.normalization import Normalization


@dataclass(frozen=True)
class ModelConfig:
    """Defaults are the edge model: ≤ 5 M parameters and ≤ 10 GFLOPs at 480×640, all modalities."""

    name: str = "binseg_s"
    encoder_channels: tuple[int, int, int, int] = (32, 64, 112, 160)
    encoder_depths: tuple[int, int, int, int] = (1, 2, 3, 2)
    expansion: int = 3
    decoder_widths: tuple[int, int, int, int] = (32, 48, 64, 64)
    frequency_form: FrequencyForm = "fft"
    normalization: Normalization = field(default_factory=Normalization)

    def __post_init__(self) -> None:
        if self.frequency_form not in FREQUENCY_FORMS:
            raise ValueError(f"frequency_form must be one of {FREQUENCY_FORMS}, got {self.frequency_form!r}")
        for name in ("encoder_channels", "encoder_depths", "decoder_widths"):
            values = getattr(self, name)
            if len(values) != 4 or min(values) < 1:
                raise ValueError(f"{name} needs 4 positive values (strides 4/8/16/32), got {values!r}")

    def with_form(self, form: FrequencyForm) -> ModelConfig:
        """The same architecture with the other frequency-branch implementation."""
        return replace(self, frequency_form=form)

    def to_dict(self) -> dict[str, object]:
        """Plain-Python form, loadable with ``torch.load(weights_only=True)`` and YAML."""
        return {
            "name": self.name,
            "encoder_channels": list(self.encoder_channels),
            "encoder_depths": list(self.encoder_depths),
            "expansion": self.expansion,
            "decoder_widths": list(self.decoder_widths),
            "frequency_form": self.frequency_form,
            "normalization": self.normalization.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ModelConfig:
        """Inverse of :meth:`to_dict`."""
        fields = dict(data)
        for name in ("encoder_channels", "encoder_depths", "decoder_widths"):
            fields[name] = tuple(fields[name])  # type: ignore[arg-type]
        fields["normalization"] = Normalization.from_dict(fields["normalization"])  # type: ignore[arg-type]
        return cls(**fields)  # type: ignore[arg-type]

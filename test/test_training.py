"""Training smoke run on real MM5 frames: the loss goes down, resume continues, checkpoint loads."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from binseg_ros.modalities import MODALITIES, subset_name
from binseg_ros.model import BinSegNet, load_checkpoint
from binseg_ros.training.config import TrainConfig
from binseg_ros.training.data import Augment, SegmentationDataset, augment, modality_batch
from binseg_ros.training.loop import LOG_NAME, MODEL_NAME, _seed_everything, train
from binseg_ros.training.losses import segmentation_loss
from binseg_ros.training.split import SPLITS, load_split

SIZE = (96, 128)


def _loss(net: BinSegNet, batch) -> float:
    net.eval()
    with torch.no_grad():
        return float(segmentation_loss(net(modality_batch(batch, MODALITIES, torch.device("cpu"))), batch["target"]))


def _smoke_config(mm5_root, out_dir, **changes) -> TrainConfig:
    """A run small enough for a test: a few MM5 training frames at SIZE, seed 3."""
    settings = {"size": SIZE, "batch_size": 4, "seed": 3, **changes}
    return TrainConfig(data_root=str(mm5_root), split_file=str(SPLITS / "mm5.yaml"), out_dir=str(out_dir), **settings)


def test_one_epoch_lowers_the_loss_and_resume_continues(mm5_root, tmp_path):
    config = _smoke_config(mm5_root, tmp_path, epochs=2, lr=3e-3, limit=8)
    ids = load_split(config.split_file).train_ids()[:8]
    clean = SegmentationDataset(mm5_root, ids, SIZE, Augment.none())
    batch = torch.utils.data.default_collate([clean[i] for i in range(len(clean))])
    _seed_everything(config.seed)
    initial = _loss(BinSegNet(), batch)  # the same initial weights train() starts from

    assert train(config, progress=False, stop_after=1) is None  # one epoch, then stop
    log = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1] and not (tmp_path / MODEL_NAME).exists()

    model_path = train(config, progress=False)  # resumes at epoch 2
    log = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert all(r["sub"] > 0 and r["consistency"] > 0 for r in log)  # modality dropout was on
    net, metadata = load_checkpoint(model_path)
    assert metadata["version"] == "balanced-degrade-e2-s3"  # degradations are on by default
    assert _loss(net, batch) < initial


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_augmentation_keeps_modalities_registered():
    """A square drawn into every modality stays in the same pixels after augmentation."""
    square = np.zeros((120, 160), bool)
    square[30:70, 20:70] = True  # off-centre, so a flip applied to one modality only would show
    frame = {
        "rgb": np.where(square[..., None], 220, 40).astype(np.uint8).repeat(3, axis=2),
        "depth": np.where(square, 1.0, 0.5).astype(np.float32),
        "thermal": np.where(square, 20000.0, 18000.0).astype(np.float32),
        "label": square.astype(np.uint8) * 5,
    }
    for seed in range(8):
        out = augment(frame, (60, 80), Augment(), np.random.default_rng(seed))
        label = out["label"] > 0
        valid = out["depth"] > 0  # holes and zoom-out padding are invalid depth
        gray, thermal = out["rgb"].mean(axis=2), out["thermal"]
        # Area resampling blends edge pixels of rgb/thermal, nearest keeps label/depth crisp,
        # so compare by IoU: a misregistered modality would score far below 0.85.
        assert iou(thermal > np.percentile(thermal, 1) + 1000, label) > 0.85
        assert iou(gray > (gray.max() + gray.min()) / 2, label) > 0.85
        assert iou((out["depth"] > 0.75) & valid, label & valid) > 0.85


def test_augmentation_is_reproducible_per_seed_epoch_and_index(mm5_root):
    ids = load_split(SPLITS / "mm5.yaml").train_ids()[:2]
    first, second = (SegmentationDataset(mm5_root, ids, SIZE, Augment(), seed=1) for _ in range(2))
    first.set_epoch(2)
    second.set_epoch(2)
    assert torch.equal(first[1]["thermal"], second[1]["thermal"])
    second.set_epoch(3)
    assert not torch.equal(first[1]["thermal"], second[1]["thermal"])


def test_subset_sampler_draws_lagging_subsets_more_and_resumes():
    from binseg_ros.training.loop import PROPER_SUBSETS
    from binseg_ros.training.sampling import SubsetSampler

    sampler = SubsetSampler(PROPER_SUBSETS, momentum=0.5, floor=0.5)
    assert sum(sampler.probabilities().values()) == pytest.approx(1.0)
    assert len(set(sampler.probabilities().values())) == 1  # no evidence yet: uniform
    for _ in range(20):
        for subset in PROPER_SUBSETS:
            sampler.update(subset, 2.0 if subset == ("thermal",) else 0.2)
    probs = sampler.probabilities()
    assert probs["thermal"] == max(probs.values()) and probs["thermal"] > 3 * probs["rgb"]
    assert min(probs.values()) >= 0.5 / len(PROPER_SUBSETS)  # the uniform floor: nothing starves
    rng = random.Random(0)
    draws = [subset_name(sampler.draw(rng)) for _ in range(3000)]
    assert draws.count("thermal") / len(draws) == pytest.approx(probs["thermal"], abs=0.03)

    restored = SubsetSampler(PROPER_SUBSETS)
    restored.load_state_dict(sampler.state_dict())
    assert restored.probabilities() == probs
    with pytest.raises(ValueError, match="expected"):
        restored.load_state_dict({"rgb": 1.0})


def test_model_card_describes_the_run_and_takes_the_evaluation(mm5_root, tmp_path):
    from binseg_ros.training.card import CARD_NAME, add_evaluation

    config = TrainConfig(
        data_root=str(mm5_root),
        split_file=str(SPLITS / "mm5.yaml"),
        out_dir=str(tmp_path),
        size=(64, 64),
        epochs=1,
        batch_size=4,
        limit=4,
        modality_dropout=False,
    )
    train(config, progress=False)
    card = tmp_path / CARD_NAME
    text = card.read_text()
    split = load_split(config.split_file)
    assert "baseline: full-modal only" in text and "1 epochs at 64×64" in text
    assert f"{len(split.held_out_ids())} frames held out" in text and '"thermal_noise": 3.0' in text
    add_evaluation(card, "| table one |", 56, config.split_file)
    add_evaluation(card, "| table two |", 56, config.split_file)  # replaces, never stacks
    text = card.read_text()
    assert "| table two |" in text and "| table one |" not in text and text.count("## Held-out evaluation") == 1
    assert text.startswith("# Model card: binseg_s")


def test_a_fine_tune_starts_from_its_weights_and_says_so(mm5_root, tmp_path):
    """``init`` loads the weights (the first loss is theirs, not a fresh net's), the version and
    the card name the run a fine-tune, and a uniform share of 1 draws every subset alike."""
    from binseg_ros.model import save_checkpoint
    from binseg_ros.training.card import CARD_NAME

    _seed_everything(11)
    start = save_checkpoint(BinSegNet(), tmp_path / "start.pt", {"version": "start"})
    config = _smoke_config(mm5_root, tmp_path / "tuned", epochs=1, lr=1e-9, limit=4, init=str(start), subset_floor=1.0)
    model_path = train(config, progress=False)
    tuned, metadata = load_checkpoint(model_path)
    started, _ = load_checkpoint(start)
    assert metadata["version"] == "balanced-degrade-e1-s3-ft"
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(tuned.parameters(), started.parameters(), strict=True))
    log = [json.loads(line) for line in (tmp_path / "tuned" / LOG_NAME).read_text().splitlines()]
    assert all(p == pytest.approx(1 / 6) for p in log[-1]["subset_probabilities"].values())
    card = (tmp_path / "tuned" / CARD_NAME).read_text()
    assert f"Fine-tuned: started from the weights `{start}`" in card and "uniform share 1.0" in card


def test_checkpoints_sharing_a_version_get_tables_of_their_own(tmp_path):
    """A fine-tune with its parent's recipe carries the parent's version; each keeps its table."""
    from binseg_ros.errors import InputError
    from binseg_ros.training.heldout import table_names

    shipped, tuned, other = tmp_path / "shipped" / "weights.pt", tmp_path / "tuned" / "model.pt", tmp_path / "x.pt"
    same = {"version": "balanced-degrade-e10-s0"}
    assert table_names([tuned, shipped, other], [same, same, {}]) == [
        "balanced-degrade-e10-s0 (tuned)",
        "balanced-degrade-e10-s0 (shipped)",
        "x",
    ]
    assert table_names([tuned, other], [same, {"version": "b"}]) == ["balanced-degrade-e10-s0", "b"]
    with pytest.raises(InputError, match="cannot be told apart"):
        table_names([tuned, tuned], [same, same])

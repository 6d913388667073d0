"""Train copydet contrastively on EmojiMem's training emoji (SimCLR's NT-Xent, as SSCD does) and calibrate its copy
threshold the way SSCD is calibrated: the cosine at which copy edits are told from distinct emoji at ≥ 90% precision."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from memdemo.data.emojimem import EmojiMem
from memdemo.data.families import mirror_twins
from memdemo.errors import MemdemoError
from memdemo.reference.copydet import CALIBRATION_FILE, CopydetConfig, CopyDetector, save_copydet
from memdemo.reference.features import images_to_tensor
from memdemo.training.augment import copy_edit
from memdemo.training.loop import LoopState, run_card, run_loop, settings_from

TARGET_PRECISION = 0.9
MAX_DISTINCT_FLAGGED = 0.05  # a verdict that calls more than 1 in 20 distinct look-alikes a copy contradicts the eye
ATTACK_RADIUS = 0.03  # L∞, on the 0–1 scale: about 8/255, the usual budget for 32×32 images


@dataclass(frozen=True)
class CopydetTrainConfig:
    """Hyperparameters: NT-Xent at τ = 0.1, batch 128 (docs/decisions.md §9). `adversarial` is the L∞ radius of an
    attack on the second view; `hard_negatives` fills half of each batch with look-alikes of the other half."""

    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-3
    warmup_steps: int = 100
    temperature: float = 0.1
    ema_decay: float = 0.995
    noise_aware: bool = False
    input_blur: float = 0.0
    adversarial: float = 0.0
    hard_negatives: bool = False
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 50


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent: each of the 2N unit embeddings must pick its pair's view among the other 2N − 1."""
    embeddings = torch.cat([first, second])
    logits = embeddings @ embeddings.T / temperature
    logits = logits.masked_fill(torch.eye(len(embeddings), dtype=torch.bool, device=logits.device), float("-inf"))
    n = len(first)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(logits.device)
    return F.cross_entropy(logits, targets)


def adversarial_view(
    model: torch.nn.Module, anchors: torch.Tensor, view: torch.Tensor, radius: float, generator: torch.Generator
) -> torch.Tensor:
    """The view moved within an L∞ ball of `radius` to lower its cosine to the anchor embeddings: one signed-gradient
    step from a random start (FGSM-RS, Wong et al. 2020), so the descriptor learns to ignore the small edits G_sim
    makes."""
    start = (torch.rand(view.shape, generator=generator) * 2 - 1).to(view) * radius
    delta = start.requires_grad_(True)
    with torch.enable_grad():
        cosine = (anchors.detach() * model((view + delta).clamp(0, 1))).sum()
        (gradient,) = torch.autograd.grad(cosine, delta)
    delta = (delta.detach() - 1.25 * radius * gradient.sign()).clamp(-radius, radius)
    return (view + delta).clamp(0, 1)


def look_alikes(images: torch.Tensor, count: int = 8) -> torch.Tensor:
    """For each image, the rows of its `count` nearest other images by mean-removed grey level (shape, not colour)."""
    grey = images.mean(1).flatten(1)
    grey = F.normalize(grey - grey.mean(1, keepdim=True), dim=1)
    similarity = grey @ grey.T
    similarity.fill_diagonal_(-2.0)
    return similarity.topk(count, dim=1).indices


def draw_batch(count: int, size: int, neighbours: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """`size` random rows of `count`; with `neighbours`, the second half are look-alikes of the first half."""
    if neighbours is None:
        return torch.randint(count, (size,), generator=generator)
    half = size // 2
    anchors = torch.randint(count, (size - half,), generator=generator)
    pick = torch.randint(neighbours.shape[1], (half,), generator=generator)
    return torch.cat([anchors, neighbours[anchors[:half], pick]])


def training_images(dataset: EmojiMem) -> torch.Tensor:
    """The unique training-split images in [0, 1]: holdout emoji stay unseen, so calibration on them is fair."""
    ids = dataset.ids("train")
    if not ids:
        raise MemdemoError("the dataset has no training split; rebuild it with `python -m memdemo data build-emojimem`")
    return images_to_tensor(dataset.images[ids])


def train_copydet(
    config: CopydetTrainConfig, dataset: EmojiMem, out: Path, device: str = "cpu", progress: bool = True
) -> CopyDetector:
    """Train (resuming from out/checkpoint), write the EMA descriptor to `out`, return it."""
    torch.manual_seed(config.seed)
    model = CopyDetector(CopydetConfig(input_blur=config.input_blur)).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    images = training_images(dataset)
    generator = torch.Generator().manual_seed(config.seed)

    neighbours = look_alikes(images) if config.hard_negatives else None

    def train_step(step: int) -> torch.Tensor:
        batch = images[draw_batch(len(images), config.batch_size, neighbours, generator)]
        first = model(copy_edit(batch, generator).to(device))
        second = copy_edit(batch, generator, degrade=config.noise_aware).to(device)
        if config.adversarial > 0:
            second = adversarial_view(model, first, second, config.adversarial, generator)
        return nt_xent(first, model(second), config.temperature)

    def write(state: LoopState) -> None:
        save_copydet(out, copy.deepcopy(ema).cpu().eval(), run_card(state, config, device))

    settings = settings_from(config, "copydet", clip_grad_norm=None)
    run_loop(settings, asdict(config), model, ema, optimizer, train_step, generator, out, write, progress)
    return ema.cpu().eval()


def threshold_for_precision(
    positives: np.ndarray,
    negatives: np.ndarray,
    precision: float = TARGET_PRECISION,
    max_flagged: float = MAX_DISTINCT_FLAGGED,
    min_recall: float = 0.5,
) -> tuple[float, float, float, bool]:
    """Lowest cosine τ (0.005 grid) that detects ≥ `min_recall` of the copies at balanced precision
    TPR/(TPR + FPR) ≥ `precision` while flagging at most `max_flagged` of the distinct pairs; if none does, the τ of
    best precision among those detecting ≥ `min_recall`. Returns (τ, TPR, FPR, target reached)."""
    grid = np.round(np.arange(-1.0, 1.0001, 0.005), 3)
    rates = [(float(t), float(np.mean(positives > t)), float(np.mean(negatives > t))) for t in grid]
    rates = [(t, tpr, fpr) for t, tpr, fpr in rates if tpr >= min_recall]
    for threshold, tpr, fpr in rates:
        if tpr / (tpr + fpr) >= precision and fpr <= max_flagged:
            return threshold, tpr, fpr, True
    candidates = [(tpr / (tpr + fpr), -t, t, tpr, fpr) for t, tpr, fpr in rates]
    if not candidates:
        raise MemdemoError("no threshold detects half the copies; train the descriptor longer")
    *_, threshold, tpr, fpr = max(candidates)
    return threshold, tpr, fpr, False


@torch.no_grad()
def calibrate_copydet(model: CopyDetector, dataset: EmojiMem, edits_per_image: int = 4, seed: int = 1234) -> dict:
    """Positives: copy edits of each holdout emoji vs the emoji itself; negatives: each holdout emoji vs its most
    similar training emoji (a distinct family, docs/decisions.md §10), leaving out holdout emoji whose mirror image is
    in training (a mirrored copy is a copy edit). Classes weighted equally."""
    model = model.cpu().eval()
    holdout_ids = dataset.ids("holdout")
    holdout = images_to_tensor(dataset.images[holdout_ids])
    train_embeddings = model(training_images(dataset))
    holdout_embeddings = model(holdout)
    twins = mirror_twins(dataset.images[holdout_ids], dataset.images[dataset.ids("train")])
    distinct = np.setdiff1d(np.arange(len(holdout_ids)), twins)
    negatives = (holdout_embeddings @ train_embeddings.T).max(1).values.numpy()[distinct]
    generator = torch.Generator().manual_seed(seed)
    positives = np.concatenate(
        [(model(copy_edit(holdout, generator)) * holdout_embeddings).sum(1).numpy() for _ in range(edits_per_image)]
    )
    threshold, tpr, fpr, reached = threshold_for_precision(positives, negatives)
    edits = copy_edit(holdout, generator)
    attacked = model(adversarial_view(model, holdout_embeddings, edits, ATTACK_RADIUS, generator))
    under_attack = float(np.mean((attacked * holdout_embeddings).sum(1).numpy() > threshold))
    return {
        "threshold": threshold,
        "target_precision": TARGET_PRECISION,
        "target_distinct_flagged": MAX_DISTINCT_FLAGGED,
        "target_reached": reached,
        "precision": round(tpr / (tpr + fpr), 4),
        "copies_detected": round(tpr, 4),
        "distinct_flagged": round(fpr, 4),
        "copies_detected_under_attack": round(under_attack, 4),
        "attack_radius": ATTACK_RADIUS,
        "at_0.5": {
            "copies_detected": round(float(np.mean(positives > 0.5)), 4),
            "distinct_flagged": round(float(np.mean(negatives > 0.5)), 4),
        },
        "positives": len(positives),
        "negatives": len(negatives),
        "mirror_twins_left_out": len(twins),
        "protocol": (
            f"{edits_per_image} random copy edits (the training augmentations) of "
            "each holdout emoji vs the emoji; negatives: each holdout emoji vs its nearest training emoji by this "
            "descriptor, except those whose mirror image is a training emoji; precision = TPR / (TPR + FPR) with "
            f"equal class weights; under attack: one more copy edit of each, moved within L∞ {ATTACK_RADIUS} to lower "
            "its cosine (FGSM with a random start)"
        ),
    }


def write_calibration(folder: Path, calibration: dict) -> None:
    (folder / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=2) + "\n", encoding="utf-8")

"""Training: Adam (lr 1e-3), batch 32, up to 50 epochs, early stopping on validation AUC.

Training stops after `patience` (10) epochs without a better validation AUC and keeps the best
weights. With CUDA the forward pass runs under torch.autocast (mixed precision); on CPU it runs
in float32. `seed_everything` makes runs repeatable (deterministic algorithms).

Slice models add a localization loss that uses the phantoms' lesion masks (`localization_loss`,
weight `mask_weight`): classification alone lets a network find a lesion through features far
from it, and then the class map, and the finding's location, lands elsewhere.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import augment, data, metrics
from .nets import head_weights

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 50
    patience: int = 10
    seed: int = 1
    augment: bool = True
    mask_weight: float = 0.5  # localization loss weight; 0 disables it (volumes never use it)


def seed_everything(seed: int) -> None:
    """Seeds Python, numpy and torch and asks torch for deterministic algorithms."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def predict(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities for prepared samples, in eval mode."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            logits, _ = model(torch.from_numpy(x[i : i + batch_size]).to(dev))
            out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    return np.concatenate(out)


def validation_auc(model, split: data.Split, finding: np.ndarray) -> float:
    """AUC of the finding score per case (maximum over a case's slices), as Argus scores."""
    probs = data.case_scores(predict(model, split.x), split)
    y = finding[split.case_labels].astype(int)
    return metrics.auc(y, metrics.finding_score(probs, finding)) or 0.0


def localization_loss(model, features: torch.Tensor, y: torch.Tensor, masks: torch.Tensor):
    """Cross-entropy between the lesion mask and the spatial softmax of the class map.

    For each sample whose (augmented) mask is not empty, the map of its true label,
    sum_k w[y,k] A_k, is turned into a distribution over feature cells by a softmax, and the
    target is the mask's area per cell, normalised to sum 1: the map is pushed to peak on the
    lesion and nowhere else. Returns 0 when no sample has a mask.
    """
    target = F.adaptive_avg_pool2d(masks, features.shape[-2:]).flatten(1)
    keep = (target.sum(dim=1) > 1e-3) & (y > 0)
    if not keep.any():
        return features.new_zeros(())
    target = target[keep] / target[keep].sum(dim=1, keepdim=True)
    w = head_weights(model)[y[keep]]
    cam = torch.einsum("pk,pk...->p...", w, features[keep].float()).flatten(1)
    return -(target * F.log_softmax(cam, dim=1)).sum(dim=1).mean()


def _batch_loss(model, x, y, masks, cfg: TrainConfig):
    """Cross-entropy of the logits, plus the weighted localization loss when masks are given."""
    logits, features = model(x)
    loss = F.cross_entropy(logits.float(), y)
    if masks is not None and cfg.mask_weight > 0:
        loss = loss + cfg.mask_weight * localization_loss(model, features, y, masks)
    return loss


def _epoch(model, opt, scaler, train: data.Split, sampler, cfg: TrainConfig, g) -> float:
    """One pass of balanced batches; returns the mean loss."""
    model.train()
    dev, losses = next(model.parameters()).device, []
    use_masks = train.masks is not None and cfg.mask_weight > 0
    for batch in sampler:
        x = torch.from_numpy(train.x[batch])
        masks = torch.from_numpy(train.masks[batch]) if use_masks else None
        if cfg.augment:
            x, masks = augment.augment(x, g, masks) if use_masks else (augment.augment(x, g), None)
        y = torch.from_numpy(train.y[batch]).long().to(dev)
        with torch.autocast(dev.type, enabled=dev.type == "cuda"):
            loss = _batch_loss(model, x.to(dev), y, None if masks is None else masks.to(dev), cfg)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    return float(np.mean(losses))


def fit(model, train: data.Split, val: data.Split, finding: np.ndarray, cfg: TrainConfig) -> dict:
    """Trains in place, restores the best weights, and returns the training history."""
    model.to(device())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scaler = torch.amp.GradScaler(enabled=device().type == "cuda")
    sampler = augment.BalancedBatchSampler(train.y, cfg.batch_size, cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    best, best_state, stale, history = -1.0, None, 0, []
    for epoch in range(cfg.epochs):
        loss = _epoch(model, opt, scaler, train, sampler, cfg, g)
        val_auc = validation_auc(model, val, finding)
        history.append({"epoch": epoch + 1, "loss": round(loss, 5), "val_auc": round(val_auc, 5)})
        log.info("epoch %d loss %.4f val_auc %.4f", epoch + 1, loss, val_auc)
        if val_auc > best:
            best, stale = val_auc, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if stale >= cfg.patience:
            break
    model.load_state_dict(best_state)
    recalibrate_batchnorm(model, train.x, cfg.batch_size)
    return {"best_val_auc": best, "epochs": len(history), "history": history}


def recalibrate_batchnorm(model, x: np.ndarray, batch_size: int) -> None:
    """Recomputes batch-norm running statistics on un-augmented training samples.

    The running statistics gathered during training follow augmented, class-balanced batches
    and lag the weights; in eval mode that shifts the logits (the ranking, and so the AUC, stays,
    but probabilities near the 0.5 threshold move). One pass with a cumulative average fixes it.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    dev = next(model.parameters()).device
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            model(torch.from_numpy(x[i : i + batch_size]).to(dev))
    for m in norms:
        m.momentum = 0.1
    model.eval()

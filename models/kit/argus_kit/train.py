"""Training: Adam (lr 1e-3), batch 32, up to 50 epochs, early stopping on validation AUC.

Training stops after `patience` (10) epochs without a better validation AUC and keeps the best
weights. With CUDA the forward pass runs under torch.autocast (mixed precision); on CPU it runs
in float32. `seed_everything` makes runs repeatable (deterministic algorithms).
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

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 50
    patience: int = 10
    seed: int = 1
    augment: bool = True


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


def _epoch(model, opt, scaler, train: data.Split, sampler, cfg: TrainConfig, g) -> float:
    """One pass of balanced batches; returns the mean loss."""
    model.train()
    dev, losses = next(model.parameters()).device, []
    for batch in sampler:
        x = torch.from_numpy(train.x[batch])
        if cfg.augment:
            x = augment.augment(x, g)
        y = torch.from_numpy(train.y[batch]).long().to(dev)
        with torch.autocast(dev.type, enabled=dev.type == "cuda"):
            logits, _ = model(x.to(dev))
            loss = F.cross_entropy(logits.float(), y)
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

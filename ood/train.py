"""One training loop for every network in the study (classifiers now, segmenters and decoders later).

It owns the things every training run needs and nobody wants to write twice: device selection
(``device: auto``), seeding, mixed precision on CUDA, a progress bar, per-epoch validation and an
atomic checkpoint after every epoch from which an interrupted run resumes.

Resumed runs give the same weights as uninterrupted ones: every epoch re-seeds the shuffling
generator and torch's global RNG from ``(seed, epoch)``, so no RNG state has to be carried over.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .models import atomic_torch_save

IGNORE_INDEX = 255  # void label, shared with the dense benchmarks


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; anything else is passed to ``torch.device``."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(spec)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A single-process loader (the embedded data lives in memory; workers only add start-up cost)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      drop_last=drop_last, num_workers=0)


def _accuracy_counts(logits: torch.Tensor, target: torch.Tensor) -> tuple[int, int]:
    """Correct and counted predictions; works for [N,C] vs [N] and [N,C,H,W] vs [N,H,W] (void ignored)."""
    valid = target != IGNORE_INDEX
    correct = (logits.argmax(1) == target) & valid
    return int(correct.sum()), int(valid.sum())


def _random_hflip(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flip = torch.rand(len(x)) < 0.5
    x = torch.where(flip.view(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)
    if y.ndim == 3:  # per-pixel targets follow their image
        y = torch.where(flip.view(-1, 1, 1), y.flip(-1), y)
    return x, y


@torch.no_grad()
def evaluate_loss(model: nn.Module, loader: Iterable, loss_fn: Callable, device: torch.device) -> tuple[float, float]:
    model.eval()
    total_loss, correct, count, batches = 0.0, 0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        total_loss += loss_fn(logits, y).item()
        c, n = _accuracy_counts(logits, y)
        correct, count, batches = correct + c, count + n, batches + 1
    return total_loss / max(batches, 1), correct / max(count, 1)


def fingerprint(**config: Any) -> str:
    """Identifies a training run; a checkpoint is only resumed by a run with the same fingerprint."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def train(model: nn.Module, train_set: Dataset, val_set: Dataset | None = None, *,
          epochs: int, batch_size: int, lr: float, weight_decay: float = 0.0,
          optimizer: str = "adam", momentum: float = 0.9, scheduler: str = "cosine",
          seed: int = 0, device: str = "auto", amp: bool = True,
          checkpoint: str | os.PathLike | None = None,
          loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          progress: bool = True, run_id: str = "", hflip: bool = False) -> list[dict[str, float]]:
    """Train ``model`` in place and return the per-epoch history.

    ``hflip``: flip half of each batch left-right (images, and per-pixel targets with them).
    ``checkpoint``: file written atomically after every epoch; if it exists and was written by a run
    with the same configuration (``run_id`` plus every argument here), training resumes after its
    last completed epoch. It is deleted once training finishes.
    """
    dev = resolve_device(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    model.to(dev)
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    loader = make_loader(train_set, batch_size, shuffle=True, seed=seed, drop_last=len(train_set) > batch_size)
    val_loader = make_loader(val_set, 4 * batch_size, shuffle=False) if val_set is not None else None
    total_steps = epochs * len(loader)
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total_steps, 1), pct_start=0.15)
             if scheduler == "cosine" else None)
    use_amp = amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    run = fingerprint(run_id=run_id, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      optimizer=optimizer, momentum=momentum, scheduler=scheduler, seed=seed, n=len(train_set),
                      hflip=hflip)
    history: list[dict[str, float]] = []
    start = 0
    ckpt_path = Path(checkpoint) if checkpoint else None
    if ckpt_path is not None and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=dev, weights_only=True)
        if state.get("run") == run:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            if sched is not None:
                sched.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            history = [dict(h) for h in state["history"]]
            start = len(history)
            print(f"Resuming from {ckpt_path} after epoch {start}/{epochs}.")
        else:
            print(f"Ignoring {ckpt_path}: written by a run with another configuration.")

    for epoch in range(start, epochs):
        # Per-epoch seeding makes a resumed run identical to an uninterrupted one.
        loader.generator.manual_seed(seed * 1000 + epoch)
        torch.manual_seed(seed * 1000 + epoch)
        model.train()
        run_loss, correct, count = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for step, (x, y) in enumerate(bar, 1):
            if hflip:
                x, y = _random_hflip(x, y)
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            with torch.autocast(device_type=dev.type, enabled=use_amp):
                logits = model(x)
                loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if sched is not None:
                sched.step()
            run_loss += loss.item()
            c, n = _accuracy_counts(logits.detach(), y)
            correct, count = correct + c, count + n
            bar.set_postfix(loss=f"{run_loss / step:.3f}", acc=f"{correct / max(count, 1):.3f}", refresh=False)
        row = {"epoch": epoch + 1, "train_loss": run_loss / max(len(loader), 1), "train_acc": correct / max(count, 1)}
        if val_loader is not None:
            row["val_loss"], row["val_acc"] = evaluate_loss(model, val_loader, loss_fn, dev)
        history.append(row)
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if ckpt_path is not None:
            atomic_torch_save({"run": run, "model": model.state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict() if sched is not None else {},
                               "scaler": scaler.state_dict(), "history": history}, ckpt_path)
    if ckpt_path is not None and ckpt_path.exists():
        ckpt_path.unlink()
    model.eval()
    return history


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, batch_size: int = 512, progress: bool = False,
            fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs (logits, or ``fn(x)`` e.g. ``model.features``) and labels of a whole dataset, on CPU
    as float32; every sample is kept, OOD ones (label -1) included."""
    dev = next(model.parameters()).device
    fn = fn or model
    model.eval()
    outs, labels = [], []
    for x, y in tqdm(make_loader(dataset, batch_size, shuffle=False), disable=not progress, leave=False):
        outs.append(fn(x.to(dev)).float().cpu())
        labels.append(y)
    return torch.cat(outs), torch.cat(labels)

"""One training loop for every network in the study: classifiers, segmenters and the networks the
detectors own (Heatmap OOD's decoder now; MoodCat's GAN, DiffGuard's diffusion model and NFlowJS's
flow next).

:func:`fit` owns what every training run needs and nobody wants to write twice: device selection
(``device: auto``), seeding, mixed precision on CUDA, several optimizers, EMA weights, a progress
bar, per-epoch validation and an atomic checkpoint of every network after every epoch, from which an
interrupted run resumes to bit-identical weights. A method plugs in a :class:`Task` (its networks,
optimizers and one training step); :func:`train` is the supervised task of classifiers and
segmenters. Under ``torch.distributed`` (``torchrun``) the same loop trains data-parallel: each
process takes its shard of every epoch, gradients are averaged across processes before every
optimizer step, buffers (BatchNorm statistics) follow rank 0 after every epoch, the logged losses
are averaged, and only rank 0 writes checkpoints (see :func:`fit`).
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

from .io import atomic_torch_save

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


def _random_crop(x: torch.Tensor, y: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``side`` x ``side`` square at a random place in each image of the batch, its per-pixel
    target cut with it (segmenters trained on crops of large frames, e.g. Cityscapes' 1024x2048)."""
    h, w = x.shape[-2:]
    if side > min(h, w):
        raise ValueError(f"crop {side} is larger than the {h}x{w} frames: choose crop <= {min(h, w)} or none")
    tops = torch.randint(0, h - side + 1, (len(x),)).tolist()
    lefts = torch.randint(0, w - side + 1, (len(x),)).tolist()
    cut = lambda a, i: a[i, ..., tops[i]:tops[i] + side, lefts[i]:lefts[i] + side]  # noqa: E731
    return torch.stack([cut(x, i) for i in range(len(x))]), torch.stack([cut(y, i) for i in range(len(y))])


def fingerprint(**config: Any) -> str:
    """Identifies a training run; a checkpoint is only resumed by a run with the same fingerprint."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class Task:
    """What one method trains: its networks, optimizers and one training step.

    Subclasses set :attr:`networks` (name -> module; everything the checkpoint holds) and implement
    :meth:`optimizers` and :meth:`training_step`. The step receives a batch (already on the device)
    and a :class:`Step`, through which it updates any of its optimizers (``step.update(loss, "g")``:
    zero_grad, backward under the AMP scaler, step, scheduler), as often as the method needs (a GAN
    updates its discriminator and generator in turn). It returns the numbers to log.
    """

    networks: dict[str, nn.Module]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def schedulers(self, optimizers: dict[str, torch.optim.Optimizer], total_steps: int) -> dict[str, Any]:
        """Learning-rate schedulers by optimizer name, stepped after every update (default: none)."""
        return {}

    def train_mode(self) -> None:
        """Put the networks in training mode at the start of each epoch (default: all of them; a task
        may keep parts in eval mode, e.g. frozen BatchNorm statistics)."""
        for net in self.networks.values():
            net.train()

    def prepare(self, batch: Any, device: torch.device) -> Any:
        """Move a batch to the device (default: every tensor of a tuple/list)."""
        if isinstance(batch, (tuple, list)):
            return type(batch)(t.to(device, non_blocking=True) if torch.is_tensor(t) else t for t in batch)
        return batch.to(device, non_blocking=True)

    def training_step(self, batch: Any, step: "Step") -> dict[str, float]:
        raise NotImplementedError

    def validation_step(self, batch: Any) -> dict[str, float]:
        """Numbers on one validation batch, averaged over batches (default: nothing)."""
        return {}


class Step:
    """Handed to :meth:`Task.training_step`: the device, autocast and the optimizer updates."""

    def __init__(self, device: torch.device, optimizers: dict, schedulers: dict, scaler: Any,
                 amp: bool, ema: dict[str, "EMA"], networks: dict[str, nn.Module]):
        self.device, self._opts, self._scheds, self._scaler = device, optimizers, schedulers, scaler
        self._amp, self._ema, self._networks = amp, ema, networks
        # An average follows its own network's steps only (a GAN's D step leaves G's EMA alone).
        owned = {k: {id(p) for g in opt.param_groups for p in g["params"]} for k, opt in optimizers.items()}
        self._ema_after = {k: [n for n in ema if any(id(p) in ids for p in networks[n].parameters())]
                           for k, ids in owned.items()}

    def autocast(self) -> Any:
        """Mixed precision on CUDA when ``amp`` is on; a no-op elsewhere."""
        return torch.autocast(device_type=self.device.type, enabled=self._amp)

    def update(self, loss: torch.Tensor, optimizer: str) -> None:
        """One optimizer step on ``loss`` (then its scheduler, then the EMA of the networks it updates);
        data-parallel, on the gradient averaged over every process."""
        opt = self._opts[optimizer]
        opt.zero_grad(set_to_none=True)
        self._scaler.scale(loss).backward()
        _average_gradients(opt)
        self._scaler.step(opt)
        self._scaler.update()
        if optimizer in self._scheds:
            self._scheds[optimizer].step()
        for name in self._ema_after[optimizer]:
            self._ema[name].update(self._networks[name])


class EMA:
    """Exponential moving average of a network's weights (buffers copied): ``ema.module``."""

    def __init__(self, network: nn.Module, decay: float):
        import copy

        self.decay = decay
        self.module = copy.deepcopy(network).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        for avg, cur in zip(self.module.state_dict().values(), network.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(cur.detach(), 1.0 - self.decay)
            else:
                avg.copy_(cur)


def _loader(dataset: Dataset, batch_size: int, seed: int) -> DataLoader:
    """Shuffled training loader; under torch.distributed each process gets its own shard (DDP)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():  # the seam for data-parallel training
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=True)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=0)
    return make_loader(dataset, batch_size, shuffle=True, seed=seed, drop_last=len(dataset) > batch_size)


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main_process() -> bool:
    """Rank 0, or the only process."""
    import torch.distributed as dist

    return not _distributed() or dist.get_rank() == 0


def _average_gradients(opt: torch.optim.Optimizer) -> None:
    """All-reduce the gradients an optimizer is about to apply to their mean over the processes (one
    flat buffer per step). Explicit rather than DistributedDataParallel so that tasks with several
    optimizers and forward passes per step (a GAN) need no wrapping."""
    if not _distributed():
        return
    import torch.distributed as dist

    grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def _sync_from_rank0(modules: Iterable[nn.Module]) -> None:
    """Parameters and buffers of rank 0 on every process (start: the same weights everywhere; every
    epoch: BatchNorm statistics, which each process accumulates on its own shard)."""
    if not _distributed():
        return
    import torch.distributed as dist

    for module in modules:
        for t in (*module.parameters(), *module.buffers()):
            dist.broadcast(t.data, src=0)


def _mean_over_processes(sums: dict[str, float]) -> dict[str, float]:
    """Per-process sums of the logged values, averaged over the processes (same keys everywhere)."""
    if not _distributed() or not sums:
        return sums
    import torch.distributed as dist

    keys = sorted(sums)
    t = torch.tensor([sums[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return dict(zip(keys, (t / dist.get_world_size()).tolist()))


def fit(task: Task, train_set: Dataset, val_set: Dataset | None = None, *, epochs: int, batch_size: int,
        seed: int = 0, device: str | torch.device = "auto", amp: bool = True,
        checkpoint: str | os.PathLike | None = None, run_id: str = "", progress: bool = True,
        ema: dict[str, float] | None = None, desc: str = "epoch",
        val_batch_size: int | None = None) -> list[dict[str, float]]:
    """The training loop of every network in the study; returns the per-epoch history.

    Moves ``task.networks`` to ``device`` (``auto``: CUDA, MPS, else CPU), runs
    ``task.training_step`` over shuffled batches of ``train_set`` for ``epochs`` epochs with mixed
    precision on CUDA (``amp``) and a progress bar, averages ``task.validation_step`` over
    ``val_set`` after every epoch, keeps an exponential moving average of the networks named in
    ``ema`` (name -> decay; the averaged copies are returned in ``task.ema``), and writes an atomic
    checkpoint after every epoch (every network, optimizer, scheduler, scaler, EMA and the history).
    An existing checkpoint written by a run with the same ``run_id`` and arguments is resumed after
    its last completed epoch; the result is bit-identical to an uninterrupted run, because every
    epoch re-seeds the shuffling and torch's global RNG from ``(seed, epoch)``. The checkpoint is
    deleted once training finishes. ``val_batch_size`` (default ``4 × batch_size``) batches the
    validation set (whole frames, where training sees crops).

    Under ``torch.distributed`` every process must call ``fit`` with the same arguments; it trains
    data-parallel (module docstring) and ``batch_size`` is per process, as with DDP: the step sees
    ``batch_size × world`` images, so scale the learning rate as you would for DDP.
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    for net in task.networks.values():
        net.to(dev)
    _sync_from_rank0(task.networks.values())
    opts = task.optimizers()
    loader = _loader(train_set, batch_size, seed)
    val_loader = make_loader(val_set, val_batch_size or 4 * batch_size, shuffle=False) if val_set is not None else None
    scheds = task.schedulers(opts, max(epochs * len(loader), 1))
    use_amp = amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    averages = {name: EMA(task.networks[name], decay) for name, decay in (ema or {}).items()}
    task.ema = {name: e.module for name, e in averages.items()}  # type: ignore[attr-defined]
    step = Step(dev, opts, scheds, scaler, use_amp, averages, task.networks)

    run = fingerprint(run_id=run_id, epochs=epochs, batch_size=batch_size, seed=seed, n=len(train_set),
                      networks=sorted(task.networks), ema=ema)
    history: list[dict[str, float]] = []
    start = 0
    ckpt_path = Path(checkpoint) if checkpoint else None
    if ckpt_path is not None and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=dev, weights_only=True)
        if state.get("run") == run:
            for name, net in task.networks.items():
                net.load_state_dict(state["networks"][name])
            for name, opt in opts.items():
                opt.load_state_dict(state["optimizers"][name])
            for name, sched in scheds.items():
                sched.load_state_dict(state["schedulers"][name])
            for name, e in averages.items():
                e.module.load_state_dict(state["ema"][name])
            scaler.load_state_dict(state["scaler"])
            history = [dict(h) for h in state["history"]]
            start = len(history)
            print(f"Resuming from {ckpt_path} after epoch {start}/{epochs}.")
        else:
            print(f"Ignoring {ckpt_path}: written by a run with another configuration.")

    for epoch in range(start, epochs):
        # Per-epoch seeding makes a resumed run identical to an uninterrupted one.
        if isinstance(loader.sampler, torch.utils.data.distributed.DistributedSampler):
            loader.sampler.set_epoch(epoch)
        else:
            loader.generator.manual_seed(seed * 1000 + epoch)
        torch.manual_seed(seed * 1000 + epoch)
        task.train_mode()
        sums: dict[str, float] = {}
        bar = tqdm(loader, desc=f"{desc} {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for n_steps, batch in enumerate(bar, 1):
            logs = task.training_step(task.prepare(batch, dev), step)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            bar.set_postfix({k: f"{v / n_steps:.3f}" for k, v in sums.items()}, refresh=False)
        sums = _mean_over_processes(sums)
        _sync_from_rank0([*task.networks.values(), *(e.module for e in averages.values())])
        row: dict[str, float] = {"epoch": epoch + 1, **{f"train_{k}": v / max(len(loader), 1) for k, v in sums.items()}}
        if val_loader is not None:
            for net in task.networks.values():
                net.eval()
            vsums: dict[str, float] = {}
            with torch.no_grad():
                for batch in val_loader:
                    for k, v in task.validation_step(task.prepare(batch, dev)).items():
                        vsums[k] = vsums.get(k, 0.0) + float(v)
            row.update({f"val_{k}": v / max(len(val_loader), 1) for k, v in vsums.items()})
        history.append(row)
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if ckpt_path is not None and is_main_process():
            atomic_torch_save({
                "run": run,
                "networks": {k: net.state_dict() for k, net in task.networks.items()},
                "optimizers": {k: opt.state_dict() for k, opt in opts.items()},
                "schedulers": {k: sched.state_dict() for k, sched in scheds.items()},
                "ema": {k: e.module.state_dict() for k, e in averages.items()},
                "scaler": scaler.state_dict(), "history": history}, ckpt_path)
    if ckpt_path is not None and ckpt_path.exists() and is_main_process():
        ckpt_path.unlink()
    for net in task.networks.values():
        net.eval()
    return history


class SupervisedTask(Task):
    """Classifiers and segmenters: cross-entropy (void ignored), accuracy, optional flips and
    (segmenters) random crops."""

    def __init__(self, model: nn.Module, *, lr: float, weight_decay: float, optimizer: str, momentum: float,
                 scheduler: str, loss_fn: Callable | None, hflip: bool, crop: int | None = None):
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        self.networks = {"model": model}
        self.lr, self.weight_decay, self.optimizer, self.momentum = lr, weight_decay, optimizer, momentum
        self.scheduler, self.hflip, self.crop = scheduler, hflip, crop
        self.loss_fn = loss_fn or nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        params = self.networks["model"].parameters()
        if self.optimizer == "adam":
            return {"model": torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)}
        return {"model": torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                                         weight_decay=self.weight_decay, nesterov=True)}

    def schedulers(self, optimizers: dict, total_steps: int) -> dict[str, Any]:
        if self.scheduler != "cosine":
            return {}
        return {"model": torch.optim.lr_scheduler.OneCycleLR(optimizers["model"], max_lr=self.lr,
                                                             total_steps=total_steps, pct_start=0.15)}

    def prepare(self, batch: Any, device: torch.device) -> Any:
        x, y = batch
        if self.hflip and self.networks["model"].training:
            x, y = _random_hflip(x, y)
        if self.crop and self.networks["model"].training:
            x, y = _random_crop(x, y, self.crop)
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def training_step(self, batch: Any, step: Step) -> dict[str, float]:
        x, y = batch
        with step.autocast():
            logits = self.networks["model"](x)
            loss = self.loss_fn(logits, y)
        step.update(loss, "model")
        correct, count = _accuracy_counts(logits.detach(), y)
        return {"loss": loss.item(), "acc": correct / max(count, 1)}

    def validation_step(self, batch: Any) -> dict[str, float]:
        x, y = batch
        logits = self.networks["model"](x)
        correct, count = _accuracy_counts(logits, y)
        return {"loss": self.loss_fn(logits, y).item(), "acc": correct / max(count, 1)}


def train(model: nn.Module, train_set: Dataset, val_set: Dataset | None = None, *,
          epochs: int, batch_size: int, lr: float, weight_decay: float = 0.0,
          optimizer: str = "adam", momentum: float = 0.9, scheduler: str = "cosine",
          seed: int = 0, device: str = "auto", amp: bool = True,
          checkpoint: str | os.PathLike | None = None,
          loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          progress: bool = True, run_id: str = "", hflip: bool = False,
          crop: int | None = None) -> list[dict[str, float]]:
    """Train a classifier or segmenter in place with cross-entropy (:func:`fit` with a
    :class:`SupervisedTask`) and return the per-epoch history (``train_loss``, ``train_acc``,
    ``val_loss``, ``val_acc``). ``hflip``: flip half of each batch left-right (images, and
    per-pixel targets with them). ``crop``: train on a random ``crop`` x ``crop`` square of each
    frame (segmenters; validation sees whole frames, ``batch_size`` at a time).
    ``checkpoint``: see :func:`fit`."""
    task = SupervisedTask(model, lr=lr, weight_decay=weight_decay, optimizer=optimizer, momentum=momentum,
                          scheduler=scheduler, loss_fn=loss_fn, hflip=hflip, crop=crop)
    run = json.dumps([run_id, lr, weight_decay, optimizer, momentum, scheduler, hflip] + ([crop] if crop else []))
    return fit(task, train_set, val_set, epochs=epochs, batch_size=batch_size, seed=seed, device=device,
               amp=amp, checkpoint=checkpoint, run_id=run, progress=progress,
               val_batch_size=batch_size if crop else None)


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

"""Data-parallel training (torch.distributed, two gloo processes on the CPU): every process ends
with the same weights, equal to one process training on the union of the two shards' batches
(the gradient is averaged before every step); BatchNorm statistics follow rank 0; the logged loss
is the mean over processes; only rank 0 writes the checkpoint."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset
from torch.utils.data.distributed import DistributedSampler

from ood.train import Task, fit

N, BATCH, EPOCHS, SEED = 16, 4, 2, 5


def data() -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 3, generator=g)
    return TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(N, 1, generator=g))


def net(batchnorm: bool) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(3, 8), *([nn.BatchNorm1d(8)] if batchnorm else []), nn.ReLU(), nn.Linear(8, 1)]
    return nn.Sequential(*layers)


class Regression(Task):
    def __init__(self, model: nn.Module):
        self.networks = {"net": model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"net": torch.optim.SGD(self.networks["net"].parameters(), lr=0.1, momentum=0.9)}

    def training_step(self, batch, step) -> dict[str, float]:
        x, y = batch
        loss = nn.functional.mse_loss(self.networks["net"](x), y)
        step.update(loss, "net")
        return {"loss": loss.item()}


def _worker(rank: int, world: int, rdzv: str, out: str, batchnorm: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rdzv}", rank=rank, world_size=world)
    try:
        task = Regression(net(batchnorm))
        if rank == 1:  # a different start on purpose: fit starts every process from rank 0's weights
            torch.manual_seed(123)
            for p in task.networks["net"].parameters():
                nn.init.normal_(p)
        ckpt = Path(out).parent / f"ckpt-{batchnorm}.pt"
        history = fit(task, data(), epochs=EPOCHS, batch_size=BATCH, seed=SEED, device="cpu", progress=False,
                      checkpoint=ckpt)
        state = {k: v.clone() for k, v in task.networks["net"].state_dict().items()}
        Path(f"{out}.{rank}").write_bytes(pickle.dumps((state, history)))
    finally:
        dist.destroy_process_group()


def run_two(tmp_path: Path, batchnorm: bool) -> list[tuple[dict, list]]:
    out = tmp_path / f"state-{batchnorm}"
    mp.start_processes(_worker, args=(2, str(tmp_path / f"rdzv-{batchnorm}"), str(out), batchnorm),
                       nprocs=2, start_method="spawn")
    return [pickle.loads(Path(f"{out}.{r}").read_bytes()) for r in range(2)]


def reference() -> tuple[dict, list[float]]:
    """One process, plain SGD, each step on the union of the batches the two shards take."""
    model, ds = net(False), data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for epoch in range(EPOCHS):
        shards = []
        for rank in range(2):
            sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=SEED, drop_last=True)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
        steps = []
        for i in range(0, len(shards[0]), BATCH):
            idx = torch.tensor(shards[0][i:i + BATCH] + shards[1][i:i + BATCH])
            x, y = ds.tensors[0][idx], ds.tensors[1][idx]
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps.append(loss.item())  # = the mean of the two processes' batch losses (equal halves)
        losses.append(sum(steps) / len(steps))
    return model.state_dict(), losses


def test_two_processes_train_like_one_on_the_union_of_their_batches(tmp_path: Path) -> None:
    (s0, h0), (s1, h1) = run_two(tmp_path, batchnorm=False)
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k  # every process holds the same weights
    expected, losses = reference()
    for k in expected:
        assert torch.allclose(s0[k], expected[k], atol=1e-6), k
    assert h0 == h1  # the logged losses are averaged over the processes
    assert [round(row["train_loss"], 5) for row in h0] == [round(v, 5) for v in losses]
    assert not (tmp_path / "ckpt-False.pt").exists()  # rank 0's checkpoint, removed when training ends


def test_batchnorm_statistics_follow_rank_0(tmp_path: Path) -> None:
    (s0, _), (s1, _) = run_two(tmp_path, batchnorm=True)
    assert s0["1.running_mean"].abs().sum() > 0
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k

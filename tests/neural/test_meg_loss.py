"""clip_mse_loss: the reference cross-entropy, and independence from the number of processes."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from float32_tolerance import float32_atol
from neurodec.neural.meg_loss import clip_mse_loss

N_OUT, N_IN, BATCH = 6, 10, 8


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(BATCH, N_IN, generator=g), torch.randn(BATCH, N_OUT, generator=g)


def _model():
    torch.manual_seed(1)
    model = torch.nn.ModuleDict({"clip": torch.nn.Linear(N_IN, N_OUT), "mse": torch.nn.Linear(N_IN, N_OUT)})
    model.logit_scale = torch.nn.Parameter(torch.tensor(2.0))
    return model


def _loss_and_grads(model, x, y):
    out = clip_mse_loss(model["clip"](x), model["mse"](x), y, logit_scale=model.logit_scale, lam=0.7)
    out["loss"].backward()
    return out["loss"].detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


def test_loss_is_the_clip_cross_entropy_plus_mse():
    x, y = _inputs()
    clip, mse = torch.randn(BATCH, N_OUT), torch.randn(BATCH, N_OUT)
    out = clip_mse_loss(clip, mse, y, logit_scale=torch.tensor(np.log(10.0)), lam=0.25)
    # Written out by hand: softmax over the cosine similarities times 10, matching pairs on the diagonal.
    cos = (clip / clip.norm(dim=1, keepdim=True)) @ (y / y.norm(dim=1, keepdim=True)).T
    logp_rows = torch.log_softmax(10 * cos, dim=1).diagonal()
    logp_cols = torch.log_softmax(10 * cos, dim=0).diagonal()
    clip_ref = -0.5 * (logp_rows.mean() + logp_cols.mean())
    mse_ref = ((mse - y) ** 2).mean()
    atol = float32_atol(4 * BATCH * N_OUT, scale=10.0)
    assert torch.allclose(out["clip"], clip_ref, atol=atol) and torch.allclose(out["mse"], mse_ref, atol=atol)
    assert torch.allclose(out["loss"], 0.25 * clip_ref + 0.75 * mse_ref, atol=atol)
    assert torch.allclose(out["temperature"], torch.tensor(0.1), atol=1e-6)
    with pytest.raises(ValueError, match="'lam'"):
        clip_mse_loss(clip, mse, y, logit_scale=1.0, lam=1.5)
    with pytest.raises(ValueError, match="one shape"):
        clip_mse_loss(clip, mse[:3], y, logit_scale=1.0)


def _worker(rank: int, world: int, port: int, queue) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        x, y = _inputs()
        part = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        loss, grads = _loss_and_grads(_model(), x[part], y[part])
        for g in grads.values():  # what DistributedDataParallel does: average the gradients
            dist.all_reduce(g)
            g /= world
        queue.put((rank, loss.numpy(), {k: g.numpy() for k, g in grads.items()}))  # numpy: no shared memory
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two spawned python processes importing torch: ~10 s idle, more on a busy machine
def test_two_processes_give_the_single_process_loss_and_gradients():
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(2, _free_port(), queue), nprocs=2, join=True, start_method="spawn")
    results = [queue.get() for _ in range(2)]
    x, y = _inputs()
    loss, grads = _loss_and_grads(_model(), x, y)
    # Negatives from the other process too: the global batch's loss, not the mean of two half-batch losses.
    halves = [clip_mse_loss(*(2 * [_model()["clip"](x[s])]), y[s], logit_scale=2.0, lam=1.0)["loss"]
              for s in (slice(0, 4), slice(4, 8))]
    atol = float32_atol(4 * BATCH * N_IN, scale=float(np.exp(2.0)))
    for rank, rank_loss, rank_grads in results:
        np.testing.assert_allclose(rank_loss, loss.numpy(), rtol=0, atol=atol)
        for k, g in grads.items():
            np.testing.assert_allclose(rank_grads[k], g.numpy(), rtol=0, atol=atol, err_msg=f"{rank} {k}")
    full = clip_mse_loss(*(2 * [_model()["clip"](x)]), y, logit_scale=2.0, lam=1.0)["loss"]
    assert not torch.allclose(full, sum(halves) / 2, atol=1e-3)

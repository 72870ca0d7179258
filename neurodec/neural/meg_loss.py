"""CLIP-style contrastive loss plus MSE, with negatives gathered across processes.

brainmagick draws the negatives of its contrastive loss within one GPU's
batch, so a run on 4 GPUs optimizes a different loss than the same run on 1.
Here every process gathers the predictions and targets of all processes
(``torch.distributed.nn.functional.all_gather``, which carries gradients)
and computes the loss of the whole global batch: the loss equals the
single-process loss on the concatenated batch, and the gradients, averaged
over processes as DistributedDataParallel does, equal its gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["clip_mse_loss", "gather_batch"]


def gather_batch(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Concatenate each tensor over all processes of the default group, keeping gradients.

    Without an initialized process group (or with one process) the tensors
    are returned as they are. Every process must pass the same batch size
    (use ``drop_last=True``).

    Parameters
    ----------
    *tensors : tensor of shape (batch, ...)

    Returns
    -------
    tuple of tensor of shape (world_size * batch, ...)
        In rank order, so the rows of rank r are ``[r * batch, (r + 1) * batch)``.

    Notes
    -----
    The backward of the gather sums, on each process, the gradients that all
    processes computed for its rows. Since every process computes the same
    global loss, each gets ``world_size`` times its rows' gradient; the
    average over processes (DistributedDataParallel's all-reduce) is then
    exactly the global gradient.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensors

    sizes = [torch.zeros(1, dtype=torch.long, device=tensors[0].device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([len(tensors[0])], device=tensors[0].device))
    if len({int(s) for s in sizes}) != 1:
        raise ValueError(f"gather_batch needs the same batch size on every process; got {[int(s) for s in sizes]} "
                         "(train with drop_last=True).")
    return tuple(_all_gather_autograd(t) for t in tensors)


def _all_gather_autograd(tensor: torch.Tensor) -> torch.Tensor:
    """all_gather along dim 0 whose backward reduce-scatters (sums) the gradients."""
    import torch.distributed as dist

    try:  # torch >= 2.3: the replacement torch names for its deprecated public autograd all_gather
        from torch.distributed._functional_collectives import all_gather_single_autograd
    except ImportError:  # older torch: the public one (deprecated from 2.10 on, same backward)
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(tensor), dim=0)
    # The result is an asynchronous tensor; wait() makes it a plain one before cat/matmul.
    out = all_gather_single_autograd(tensor.contiguous(), 0, dist.group.WORLD)
    return out.wait() if hasattr(out, "wait") else out


def clip_mse_loss(
    clip: torch.Tensor,
    mse: torch.Tensor,
    target: torch.Tensor,
    *,
    logit_scale: torch.Tensor | float,
    lam: float = 0.5,
    symmetric: bool = True,
    gather: bool = True,
) -> dict[str, torch.Tensor]:
    """``lam * contrastive + (1 - lam) * MSE`` over the (global) batch.

    Parameters
    ----------
    clip : tensor of shape (batch, n_outputs)
        Predictions of the contrastive head.
    mse : tensor of shape (batch, n_outputs)
        Predictions of the MSE head.
    target : tensor of shape (batch, n_outputs)
        Image embeddings of the batch's trials.
    logit_scale : tensor or float
        log(1 / temperature) (e.g. ``MEGDecoder.logit_scale``); clamped at
        log(100) as in CLIP.
    lam : float in [0, 1]
        Weight of the contrastive term.
    symmetric : bool
        Average the brain -> image and image -> brain cross-entropies (CLIP);
        False keeps brain -> image only (brainmagick's ClipLoss).
    gather : bool
        Gather predictions and targets over processes (:func:`gather_batch`)
        when a process group is initialized.

    Returns
    -------
    dict
        ``loss`` (the total), ``clip`` and ``mse`` (its terms), ``temperature``.

    Notes
    -----
    The contrastive term is the cross-entropy of the cosine-similarity
    matrix between L2-normalized predictions and targets, scaled by
    ``exp(logit_scale)``, with the matching pairs on the diagonal (every other
    image of the global batch is a negative). Trials of the same image in one
    batch count as negatives of each other, as in the reference.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"The 'lam' parameter of clip_mse_loss must be in [0, 1]. Got {lam!r}.")
    if not (clip.shape == mse.shape == target.shape and clip.ndim == 2):
        raise ValueError("clip_mse_loss expects 'clip', 'mse' and 'target' of one shape (batch, n_outputs). "
                         f"Got {tuple(clip.shape)}, {tuple(mse.shape)}, {tuple(target.shape)}.")
    if gather:
        clip, mse, target = gather_batch(clip, mse, target)
    # The loss in float32 whatever the autocast dtype: a softmax over the batch loses too much in bf16.
    clip, mse, target = clip.float(), mse.float(), target.float()
    scale = torch.as_tensor(logit_scale, dtype=torch.float32, device=clip.device).clamp(max=math.log(100.0))
    logits = scale.exp() * F.normalize(clip, dim=1) @ F.normalize(target, dim=1).T
    labels = torch.arange(len(logits), device=logits.device)
    contrastive = F.cross_entropy(logits, labels)
    if symmetric:
        contrastive = 0.5 * (contrastive + F.cross_entropy(logits.T, labels))
    regression = F.mse_loss(mse, target)
    return {"loss": lam * contrastive + (1 - lam) * regression, "clip": contrastive.detach(),
            "mse": regression.detach(), "temperature": (-scale).exp().detach()}

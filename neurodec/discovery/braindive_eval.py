"""Evaluation of brain-guided images as BrainDiVE does it.

(a) Predicted activation of the synthesized images against the ROI's top
natural images, both scored by the same encoder and objective. (b) Zero-shot
CLIP categories: every image goes to the label whose prompt ("a photo of
faces", ...) its image embedding is most cosine-similar to; the shares of
each category are compared between synthesized and natural images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .guidance import make_scorer
from .guided_images import GuidedImages

__all__ = [
    "DEFAULT_CATEGORIES", "ActivationComparison", "CategoryShares", "clip_embedding_fns", "compare_predicted_activation",
    "zero_shot_category_shares",
]

#: The categories BrainDiVE reports for category-selective regions.
DEFAULT_CATEGORIES = ("faces", "places", "bodies", "words", "food")


def _as_pixels(images: Any, name: str) -> np.ndarray:
    """Images (n, H, W, 3) as float32 in [0, 1], from a GuidedImages, a float array or uint8."""
    if isinstance(images, GuidedImages):
        images = images.images
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ValueError(f"The '{name}' parameter must hold images of shape (n_images, height, width, 3). Got {images.shape}.")
    pixels = images.astype(np.float32) / 255 if images.dtype == np.uint8 else images.astype(np.float32)
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
        raise ValueError(f"The '{name}' parameter must hold finite pixels in [0, 1] (or uint8).")
    return pixels


def _batched(fn: Callable, pixels: np.ndarray, batch_size: int, device: Any) -> np.ndarray:
    """``fn`` applied without gradients to (N, 3, H, W) tensors of ``pixels``, outputs concatenated as numpy."""
    import torch

    from .._device import resolve_device

    dev = resolve_device(device)
    out = []
    with torch.no_grad():
        for start in range(0, len(pixels), batch_size):
            x = torch.from_numpy(pixels[start : start + batch_size]).permute(0, 3, 1, 2).to(dev)
            y = fn(x)
            out.append(y.detach().float().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y, dtype=np.float32))
    return np.concatenate(out)


@dataclasses.dataclass(frozen=True)
class ActivationComparison:
    """Predicted objective of synthesized images and of the top natural images.

    Attributes
    ----------
    synthesized : array of shape (n_synthesized,)
        Predicted objective of every synthesized image.
    natural : array of shape (top_k,)
        Predicted objective of the top natural images, descending.
    natural_indices : array of shape (top_k,)
        Their indices in the natural image set.
    summary : dict
        ``mean_synthesized``, ``mean_natural``, ``median_synthesized``,
        ``median_natural`` and ``auc``: the probability that a synthesized image
        scores above a top natural image (ties count half; 0.5 = no difference).
    """

    synthesized: np.ndarray
    natural: np.ndarray
    natural_indices: np.ndarray
    summary: dict[str, float]


def compare_predicted_activation(
    synthesized: GuidedImages | np.ndarray,
    natural: np.ndarray,
    encoder: Callable | None = None,
    *,
    objective: Callable | None = None,
    score_fn: Callable | None = None,
    top_k: int | None = None,
    image_size: int | Sequence[int] | None = None,
    batch_size: int = 32,
    device: Any = "auto",
) -> ActivationComparison:
    """Score synthesized and natural images with one encoder + objective; keep the natural top-k.

    Parameters
    ----------
    synthesized : GuidedImages or array of shape (n_synthesized, H, W, 3)
        Synthesized images (float in [0, 1] or uint8); rescored here so both
        sets go through the same resizing.
    natural : array of shape (n_natural, H', W', 3)
        Natural images, e.g. the stimulus set the encoder was fitted on.
    encoder, objective, score_fn
        As in :func:`neurodec.discovery.brain_guided_images`.
    top_k : int, optional
        Natural images kept, the highest scoring (all when None).
    image_size : int or (int, int), optional
        Size images are resized to before the encoder; needed when the two
        sets differ in size and the encoder wants one size.
    batch_size : int
        Images per forward pass.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        Where the images are put (the encoder must already be there).

    Returns
    -------
    ActivationComparison
    """
    synth = _as_pixels(synthesized, "synthesized")
    nat = _as_pixels(natural, "natural")
    if top_k is not None and (int(top_k) != top_k or not 1 <= top_k <= len(nat)):
        raise ValueError(f"The 'top_k' parameter must be an int between 1 and {len(nat)}. Got {top_k!r}.")
    scorer = make_scorer(encoder, objective, score_fn, image_size)
    s = _batched(scorer, synth, batch_size, device)
    n_all = _batched(scorer, nat, batch_size, device)
    order = np.argsort(-n_all, kind="stable")[: len(nat) if top_k is None else int(top_k)]
    n = n_all[order]
    above = (s[:, None] > n[None, :]).mean() + 0.5 * (s[:, None] == n[None, :]).mean()
    summary = {
        "mean_synthesized": float(s.mean()), "mean_natural": float(n.mean()),
        "median_synthesized": float(np.median(s)), "median_natural": float(np.median(n)), "auc": float(above),
    }
    return ActivationComparison(synthesized=s, natural=n, natural_indices=order, summary=summary)


@dataclasses.dataclass(frozen=True)
class CategoryShares:
    """Zero-shot category of every image and the share of each category per image set.

    Attributes
    ----------
    labels : tuple of str
        The categories.
    shares : pandas.DataFrame
        One row per image set, one column per label: the fraction of the set's
        images assigned to the label (rows sum to 1).
    assignments : dict of str -> array of shape (n_images,)
        Index into ``labels`` of every image of each set.
    """

    labels: tuple[str, ...]
    shares: Any
    assignments: dict[str, np.ndarray]


def zero_shot_category_shares(
    image_sets: Mapping[str, GuidedImages | np.ndarray],
    *,
    image_embed_fn: Callable,
    text_embed_fn: Callable[[list[str]], Any],
    labels: Sequence[str] = DEFAULT_CATEGORIES,
    template: str = "a photo of {}",
    batch_size: int = 32,
    device: Any = "auto",
) -> CategoryShares:
    """Zero-shot CLIP categories of image sets (e.g. synthesized vs top natural images).

    Parameters
    ----------
    image_sets : mapping of str -> GuidedImages or array of shape (n_images, H, W, 3)
        Named image sets, pixels float in [0, 1] or uint8.
    image_embed_fn : callable
        Images, tensor of shape (N, 3, H, W) in [0, 1], to embeddings of shape
        (N, embed_dim); it does its own resizing and normalization (e.g. an
        open_clip image tower behind its preprocessing).
    text_embed_fn : callable
        List of prompts to embeddings of shape (n_prompts, embed_dim), e.g.
        ``Backbone.encode_text`` of an open_clip backbone.
    labels : sequence of str
        Category names, filled into ``template``.
    template : str
        Prompt with one ``{}`` for the label.
    batch_size : int
        Images per forward pass.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        Where the images are put.

    Returns
    -------
    CategoryShares
        Every image goes to the label of highest cosine similarity.
    """
    import pandas as pd

    labels = tuple(str(label) for label in labels)
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"The 'labels' parameter must be a non-empty sequence of distinct names. Got {labels!r}.")
    if "{}" not in template:
        raise ValueError(f"The 'template' parameter must contain '{{}}' for the label. Got {template!r}.")
    if not image_sets:
        raise ValueError("The 'image_sets' parameter must name at least one image set.")
    text = text_embed_fn([template.format(label) for label in labels])
    text = np.asarray(text.detach().float().cpu() if hasattr(text, "detach") else text, dtype=np.float64)
    if text.ndim != 2 or text.shape[0] != len(labels):
        raise ValueError(f"text_embed_fn must return embeddings of shape ({len(labels)}, embed_dim). Got {text.shape}.")
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    assignments, rows = {}, []
    for name, images in image_sets.items():
        emb = _batched(image_embed_fn, _as_pixels(images, f"image_sets[{name!r}]"), batch_size, device).astype(np.float64)
        if emb.ndim != 2 or emb.shape[1] != text.shape[1]:
            raise ValueError(
                f"image_embed_fn returned embeddings of shape {emb.shape} for {name!r}; the text embeddings have "
                f"dimension {text.shape[1]}: both must come from the same CLIP model."
            )
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        assignments[name] = np.argmax(emb @ text.T, axis=1)
        rows.append(np.bincount(assignments[name], minlength=len(labels)) / len(emb))
    shares = pd.DataFrame(np.array(rows), index=list(image_sets), columns=list(labels))
    return CategoryShares(labels=labels, shares=shares, assignments=assignments)


def clip_embedding_fns(backbone: Any) -> tuple[Callable, Callable[[list[str]], Any]]:
    """Image and text embedding functions of a CLIP backbone, for :func:`zero_shot_category_shares`.

    Parameters
    ----------
    backbone : neurodec.backbones.Backbone
        A CLIP model with a text tower, e.g.
        ``neurodec.backbones.load("open_clip/ViT-B-32:laion2b_s34b_b79k")``.

    Returns
    -------
    image_embed_fn : callable
        Images, tensor of shape (N, 3, H, W) in [0, 1], to image embeddings of
        shape (N, embed_dim): each image is quantized to uint8 and goes through
        the backbone's own preprocessing (resize, crop, normalization), then
        its image tower.
    text_embed_fn : callable
        ``backbone.encode_text``: prompts to text embeddings (n_prompts, embed_dim).
    """
    import torch

    if not hasattr(backbone, "encode_text") or not hasattr(backbone, "preprocess"):
        raise ValueError(f"The 'backbone' parameter must be a neurodec Backbone with a text tower. Got {type(backbone).__name__}.")

    def image_embed_fn(images: "torch.Tensor") -> "torch.Tensor":
        pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        batch = torch.stack([backbone.preprocess(image) for image in pixels]).to(backbone.device)
        with torch.no_grad():
            return backbone.model(batch)

    return image_embed_fn, backbone.encode_text

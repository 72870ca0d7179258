"""Top-k retrieval among random subsets of test samples, in both directions.

The protocol of the MindEye lineage (Scotti et al. 2023, 2024), also used for
Brain-Diffuser-style linear decoders: among ``n_way`` test samples drawn at
random, each decoded (brain) embedding is compared with every true (image)
embedding by the cosine similarity of L2-normalized vectors; image retrieval
(brain -> image) counts the predictions whose own image is among the ``k``
most similar images, brain retrieval (image -> brain) the converse; the
fractions are averaged over ``n_draws`` draws. Chance is ``k / n_way``.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from .._docs import fill_doc
from ._arrays import as_matrix_pair

__all__ = ["RetrievalResult", "retrieval_top_k"]


@dataclasses.dataclass(frozen=True)
class RetrievalResult:
    """Fractions correct of :func:`retrieval_top_k`.

    Attributes
    ----------
    image_retrieval : float
        Brain -> image: mean over draws of the fraction of predictions whose
        true embedding is among the ``k`` most similar true embeddings.
    brain_retrieval : float
        Image -> brain: mean over draws of the fraction of true embeddings
        whose prediction is among the ``k`` most similar predictions.
    image_retrieval_draws, brain_retrieval_draws : array of shape (n_draws,)
        The fraction of each draw.
    k : int
        Retrieval rank counted as correct.
    n_way : int
        Candidates per draw (the number of samples when fewer than asked).
    chance : float
        ``k / n_way``.
    """

    image_retrieval: float
    brain_retrieval: float
    image_retrieval_draws: np.ndarray
    brain_retrieval_draws: np.ndarray
    k: int
    n_way: int
    chance: float


def _top_k_hits(similarity: np.ndarray, k: int) -> np.ndarray:
    """Row i is a hit when fewer than k other columns are at least as similar as column i.

    Ties count against the hit (a pessimistic rank), so that constant or
    duplicated embeddings never score above chance by the order of a sort.
    """
    right = np.diag(similarity)[:, None]
    n_better = (similarity >= right).sum(axis=1) - 1  # minus the right one itself
    return n_better < k


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"The {name!r} parameter of retrieval_top_k must be an integer >= {minimum}. Got {value!r}.")
    return int(value)


@fill_doc
def retrieval_top_k(
    pred: Any,
    true: Any,
    *,
    k: int = 1,
    n_way: int = 300,
    n_draws: int = 30,
    random_state: int | np.random.Generator | None = None,
) -> RetrievalResult:
    """Top-k image and brain retrieval among ``n_way`` random test samples.

    Parameters
    ----------
    pred : array or tensor of shape (n_samples, ...)
        Decoded (brain-predicted) embeddings; trailing axes (tokens x dims)
        are flattened, as the reference code does.
    true : array or tensor of shape (n_samples, ...)
        True (image) embeddings, in the same order.
    k : int
        A sample is retrieved when its match is among the ``k`` most similar
        candidates (ties count against it).
    n_way : int
        Candidates per draw (300 in the reference protocol). With fewer
        samples, all are used (one draw suffices then) and a warning says so.
    n_draws : int
        Random draws (without replacement within a draw) to average over.
    %(random_state)s

    Returns
    -------
    RetrievalResult

    Notes
    -----
    Image retrieval (brain -> image) ranks, for each prediction, the true
    embeddings of the draw; brain retrieval (image -> brain) ranks, for each
    true embedding, the predictions. Similarity is the cosine of
    L2-normalized vectors. The reference (MindEye's ``topk`` on
    ``torch.topk``) breaks ties arbitrarily; here a tie counts as a miss.

    References
    ----------
    Scotti et al., "Reconstructing the Mind's Eye: fMRI-to-Image with
    Contrastive Learning and Diffusion Priors", NeurIPS 2023.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> true = rng.standard_normal((500, 64))
    >>> res = retrieval_top_k(true + 0.1 * rng.standard_normal((500, 64)), true, random_state=0)
    >>> res.image_retrieval > 0.99
    True
    """
    pred_m, true_m = as_matrix_pair(pred, true, names=("pred", "true"), caller="retrieval_top_k")
    k = _check_int("k", k, 1)
    n_way = _check_int("n_way", n_way, 2)
    n_draws = _check_int("n_draws", n_draws, 1)
    n_samples = pred_m.shape[0]
    if n_samples < 2:
        raise ValueError(f"retrieval_top_k needs at least 2 samples; got {n_samples}.")
    if n_samples < n_way:
        warnings.warn(
            f"retrieval_top_k: {n_samples} samples are fewer than n_way={n_way}; retrieving among all "
            f"{n_samples} (chance {k / n_samples:.3g} instead of {k / n_way:.3g}). Pass n_way<={n_samples} "
            "to silence this warning.",
            UserWarning,
            stacklevel=2,
        )
        n_way, n_draws = n_samples, 1  # every draw would be the same set
    if k >= n_way:
        raise ValueError(f"The 'k' parameter of retrieval_top_k must be smaller than n_way={n_way}. Got {k}.")

    pred_m = pred_m / np.maximum(np.linalg.norm(pred_m, axis=1, keepdims=True), np.finfo(np.float64).tiny)
    true_m = true_m / np.maximum(np.linalg.norm(true_m, axis=1, keepdims=True), np.finfo(np.float64).tiny)
    rng = np.random.default_rng(random_state)
    image_draws = np.empty(n_draws)
    brain_draws = np.empty(n_draws)
    for draw in range(n_draws):
        idx = np.arange(n_samples) if n_way == n_samples else rng.choice(n_samples, size=n_way, replace=False)
        sim = pred_m[idx] @ true_m[idx].T  # (brain, image)
        image_draws[draw] = _top_k_hits(sim, k).mean()
        brain_draws[draw] = _top_k_hits(sim.T, k).mean()
    return RetrievalResult(
        image_retrieval=float(image_draws.mean()),
        brain_retrieval=float(brain_draws.mean()),
        image_retrieval_draws=image_draws,
        brain_retrieval_draws=brain_draws,
        k=k,
        n_way=n_way,
        chance=k / n_way,
    )

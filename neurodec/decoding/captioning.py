"""Brain captioning: decoded captioner features -> the captioner's text decoder -> captions.

Ferrante et al. (2023) decode, with ridge from nsdgeneral voxels, the image
features a captioner conditions on, then let the captioner's language model
write the caption. Here the captioner is neurodec's CLIP-prefix GPT-2
(:class:`neurodec.discovery.PrefixCaptioner`, ClipCap), which takes one image
embedding (e.g. a CLIP ViT-B/32 or ViT-L/14 image embedding) as its prefix;
the decoder is any fitted estimator whose ``predict`` returns such embeddings
(:class:`~neurodec.decoding.LinearDecoder`). Every brain caption is reported
beside a retrieval baseline that needs no language model: the caption of the
training image whose embedding is nearest (cosine) to the decoded one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .evaluation import _matrix, _unit_rows

__all__ = ["BrainCaptions", "brain_captions", "evaluate_brain_captions", "nearest_training_captions"]

#: Row names of the score table of :func:`evaluate_brain_captions`.
METHODS = ("brain captioner", "nearest training caption")


@dataclasses.dataclass(frozen=True)
class BrainCaptions:
    """Captions decoded from brain responses, the retrieval baseline, and their scores.

    Attributes
    ----------
    captions : list of str
        The captioner's caption of each decoded embedding.
    baseline_captions : list of str
        The caption of the nearest training image of each decoded embedding.
    nearest_train_index : array of shape (n_samples,)
        Index of that training image.
    decoded : array of shape (n_samples, embed_dim)
        The decoded embeddings.
    scores : pandas.DataFrame
        One row per method (``"brain captioner"``, ``"nearest training
        caption"``), one column per metric (corpus scores of
        :func:`neurodec.metrics.caption_scores`).
    per_caption : dict of str -> pandas.DataFrame
        Per method, the score of every caption (rows: samples, columns: metrics).
    """

    captions: list[str]
    baseline_captions: list[str]
    nearest_train_index: np.ndarray
    decoded: np.ndarray
    scores: pd.DataFrame
    per_caption: dict[str, pd.DataFrame]


def nearest_training_captions(
    decoded: Any, train_embeddings: Any, train_captions: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    """The caption of the training image nearest to each decoded embedding (cosine similarity).

    Parameters
    ----------
    decoded : array of shape (n_samples, embed_dim)
        Decoded embeddings.
    train_embeddings : array of shape (n_train, embed_dim)
        Embeddings of the training images, in the same space.
    train_captions : sequence of str of length n_train
        A caption of every training image.

    Returns
    -------
    captions : list of str of length n_samples
    index : array of shape (n_samples,)
        The nearest training image of each sample (first one on ties).
    """
    decoded = _matrix("decoded", decoded)
    train = _matrix("train_embeddings", train_embeddings)
    if train.shape[1] != decoded.shape[1]:
        raise ValueError(
            f"'train_embeddings' have {train.shape[1]} dimensions but the decoded embeddings {decoded.shape[1]}; "
            "both must be in the captioner's embedding space."
        )
    captions = list(train_captions)
    if len(captions) != len(train) or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"'train_captions' must be {len(train)} strings, one per training embedding. "
                         f"Got {len(captions)} items.")
    index = np.argmax(_unit_rows(decoded) @ _unit_rows(train).T, axis=1)
    return [captions[i] for i in index], index


def _decode(decoder: Any, captioner: Any, X: Any) -> np.ndarray:
    decoded = np.asarray(decoder.predict(X))
    embed_dim = getattr(captioner, "embed_dim_", None)
    if embed_dim is None:
        raise ValueError("The captioner is not fitted: fit it (PrefixCaptioner.fit) or load one first.")
    if decoded.ndim != 2 or decoded.shape[1] != embed_dim:
        raise ValueError(
            f"The decoder predicts arrays of shape {decoded.shape[1:]} per sample, but the captioner takes "
            f"{embed_dim}-dimensional embeddings: decode the captioner's own image embedding "
            "(e.g. fit the decoder on the CLIP image embeddings the captioner was trained on)."
        )
    return decoded


def brain_captions(
    decoder: Any, captioner: Any, X: Any, *, num_beams: int = 5, max_new_tokens: int = 30, batch_size: int = 64
) -> list[str]:
    """Caption brain responses: decode the captioner's image embedding, then generate text from it.

    Parameters
    ----------
    decoder : fitted estimator
        Its ``predict(X)`` returns embeddings of shape (n_samples, embed_dim)
        in the captioner's input space (e.g. a :class:`LinearDecoder` fitted
        on the CLIP image embeddings of the training images).
    captioner : neurodec.discovery.PrefixCaptioner
        A fitted captioner (``PrefixCaptioner("gpt2").fit(clip_embeddings,
        captions)``, or :func:`neurodec.discovery.load_prefix_captioner`).
    X : array of shape (n_samples, n_voxels)
        Test responses.
    num_beams, max_new_tokens, batch_size : int
        As in :meth:`PrefixCaptioner.generate` (ClipCap and BrainSCUBA: beam 5).

    Returns
    -------
    list of str of length n_samples
    """
    decoded = _decode(decoder, captioner, X)
    return captioner.generate(decoded, num_beams=num_beams, max_new_tokens=max_new_tokens, batch_size=batch_size)


def evaluate_brain_captions(
    decoder: Any,
    captioner: Any,
    X: Any,
    references: Sequence[Any],
    *,
    train_embeddings: Any,
    train_captions: Sequence[str],
    protocol: str = "coco",
    metrics: Sequence[str] | None = None,
    encode_text: Callable[[list[str]], Any] | None = None,
    num_beams: int = 5,
    max_new_tokens: int = 30,
    device: Any = "auto",
) -> BrainCaptions:
    """Brain captions and the nearest-training-caption baseline, both scored against references.

    Parameters
    ----------
    decoder, captioner, X
        As in :func:`brain_captions`.
    references : sequence of str or of sequences of str
        Reference caption(s) of each test image (NSD/COCO: five).
    train_embeddings : array of shape (n_train, embed_dim)
        Embeddings of the training images (what the decoder was fitted on).
    train_captions : sequence of str of length n_train
        One caption per training image (the baseline's candidates).
    protocol, metrics, encode_text
        As in :func:`neurodec.metrics.caption_scores` ("coco": BLEU-1..4,
        METEOR, ROUGE-L, CIDEr; "embedding": sentence / CLIP text similarity).
    num_beams, max_new_tokens : int
        Beam search of the captioner.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        Where a sentence-embedding model runs (protocol "embedding").

    Returns
    -------
    BrainCaptions
    """
    from ..metrics import caption_scores

    decoded = _decode(decoder, captioner, X)
    captions = captioner.generate(decoded, num_beams=num_beams, max_new_tokens=max_new_tokens)
    baseline, index = nearest_training_captions(decoded, train_embeddings, train_captions)
    rows, per_caption = {}, {}
    for method, candidates in zip(METHODS, (captions, baseline)):
        result = caption_scores(candidates, references, protocol=protocol, metrics=metrics,
                                encode_text=encode_text, device=device)
        rows[method] = result.scores
        per_caption[method] = pd.DataFrame(result.per_caption)
    scores = pd.DataFrame.from_dict(rows, orient="index")
    scores.index.name = "method"
    return BrainCaptions(captions=list(captions), baseline_captions=baseline, nearest_train_index=index,
                         decoded=decoded, scores=scores, per_caption=per_caption)

"""LaVCa voxel captions (top images -> their captions -> keywords -> one sentence) and the caption score.

LaVCa (2025) describes a voxel by the images an encoding model predicts it
responds to most: the top-N images are captioned, keywords are drawn from
those captions and composed into one sentence per voxel. The paper uses a
large language model for the last two steps; here the default is a
deterministic keyword extraction and a template sentence (see
:func:`lavca_captions`), with a hook for a user's LLM.

:func:`score_captions` is LaVCa's criterion, which puts BrainSCUBA's and
LaVCa's captions on one scale: how well the cosine similarity between a
caption's text embedding and each image's embedding predicts the voxel's
responses to those images (Pearson r).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._logging import progress

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["lavca_captions", "score_captions"]

_DEFAULT_TEMPLATE = "a photo of {keywords}"


def _as_array(x: Any, name: str, where: str, ndim: int) -> np.ndarray:
    x = x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=float)
    if x.ndim != ndim:
        raise ValueError(f"The {name!r} of {where} must be a {ndim}-D array. Got shape {x.shape}.")
    return x


def _join(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def lavca_captions(
    predictions: Any,
    captions: Sequence[str] | None = None,
    *,
    images: Any = None,
    image_captioner: Callable[[Any], Sequence[str]] | None = None,
    top_n: int = 20,
    n_keywords: int = 5,
    template: str = _DEFAULT_TEMPLATE,
    summarize: Callable[[list[str], list[str]], str] | None = None,
    units: Sequence[int] | np.ndarray | None = None,
    verbose: bool | int = False,
) -> "pd.DataFrame":
    """One sentence per unit from the captions of the images it is predicted to prefer (LaVCa).

    For every unit: its ``top_n`` images by predicted response; their
    captions; keywords drawn from those captions; one sentence.

    The default keyword step is **not the paper's LLM**. It is deterministic:
    captions are split into lower-case words, scikit-learn's English stop
    words removed, and each word ``w`` scored by
    ``p_top(w) * log(p_top(w) / p_all(w))``, where ``p_top`` is the fraction
    of the unit's top-N captions that contain ``w`` and ``p_all`` the fraction
    of all captions that do (the word's share of the KL divergence of the
    unit's captions from the whole set). Words frequent in the unit's top
    images but rare elsewhere come first; words every caption shares ("photo")
    score 0. The ``n_keywords`` best words with a positive score (ties broken
    alphabetically) become the keywords, and the sentence is
    ``template.format(keywords="w1, w2 and w3")``. Pass ``summarize`` to
    compose the sentence with an LLM instead, as the paper does.

    Parameters
    ----------
    predictions : array of shape (n_images, n_units)
        Predicted (or measured) responses of every unit to every image.
    captions : sequence of str of length n_images, optional
        A caption of every image. Give either ``captions`` or
        ``images`` with ``image_captioner``.
    images : indexable of length n_images, optional
        The images (or their embeddings), indexed by an integer array.
    image_captioner : callable, optional
        ``image_captioner(images[indices]) -> list of str``; called once on the
        union of all units' top-N images. Keyword frequencies are then
        relative to the captions of that union.
    top_n : int
        Images per unit (at most n_images).
    n_keywords : int
        Keywords per unit (fewer when fewer words score above 0).
    template : str
        Sentence template with a ``{keywords}`` field.
    summarize : callable, optional
        ``summarize(top_captions, keywords) -> str``: the LLM step, e.g. a
        prompt to a transformers text-generation pipeline. Replaces the template.
    units : sequence of int, optional
        Units to describe (all by default).
    verbose : bool or int
        Progress bar over units.

    Returns
    -------
    pandas.DataFrame
        One row per unit: ``unit``, ``keywords`` (list of str, best first),
        ``keyword_scores`` (their scores), ``sentence`` and ``top_images``
        (image indices, highest predicted response first).
    """
    import pandas as pd
    from sklearn.feature_extraction.text import CountVectorizer

    where = "lavca_captions"
    pred = _as_array(predictions, "predictions", where, 2)
    n_images, n_units = pred.shape
    if not isinstance(top_n, (int, np.integer)) or not 1 <= top_n <= n_images:
        raise ValueError(f"The 'top_n' of {where} must be an integer in [1, {n_images}] (n_images). Got {top_n!r}.")
    if not isinstance(n_keywords, (int, np.integer)) or n_keywords < 1:
        raise ValueError(f"The 'n_keywords' of {where} must be an integer >= 1. Got {n_keywords!r}.")
    if "{keywords}" not in template and summarize is None:
        raise ValueError(f"The 'template' of {where} must contain a '{{keywords}}' field. Got {template!r}.")
    selected = np.arange(n_units) if units is None else np.asarray(units, dtype=int).reshape(-1)
    if selected.size == 0 or selected.min() < 0 or selected.max() >= n_units:
        raise ValueError(f"The 'units' of {where} must be indices in [0, {n_units}).")
    sub = pred[:, selected]
    if not np.isfinite(sub).all():
        bad = selected[~np.isfinite(sub).all(axis=0)]
        raise ValueError(f"{where}: units {bad[:10].tolist()} have NaN/inf predictions (units without fitted weights?).")
    # Highest predicted response first; a stable sort keeps ties in image order.
    top = np.argsort(-sub, axis=0, kind="stable")[:top_n].T  # (n_selected, top_n)

    if captions is not None:
        if images is not None or image_captioner is not None:
            raise ValueError(f"{where} takes either 'captions' or 'images' with 'image_captioner', not both.")
        texts = list(captions)
        if len(texts) != n_images:
            raise ValueError(f"The 'captions' of {where} must hold one caption per image ({n_images}). Got {len(texts)}.")
        corpus_rows = np.arange(n_images)
    elif images is not None and image_captioner is not None:
        corpus_rows = np.unique(top)
        texts_union = list(image_captioner(images[corpus_rows]))
        if len(texts_union) != len(corpus_rows):
            raise ValueError(f"The 'image_captioner' of {where} returned {len(texts_union)} captions for {len(corpus_rows)} images.")
        texts = [""] * n_images
        for row, text in zip(corpus_rows, texts_union):
            texts[row] = text
    else:
        raise ValueError(f"{where} needs the images' 'captions', or 'images' and an 'image_captioner'.")

    vectorizer = CountVectorizer(stop_words="english", binary=True, lowercase=True)
    try:
        present = vectorizer.fit_transform([texts[i] for i in corpus_rows]).tocsr().astype(np.float64)
    except ValueError as exc:  # every caption empty or stop words only
        raise ValueError(f"{where}: the captions hold no content words to draw keywords from.") from exc
    vocabulary = vectorizer.get_feature_names_out()
    p_all = np.asarray(present.mean(axis=0)).ravel()
    row_of = np.full(n_images, -1)
    row_of[corpus_rows] = np.arange(len(corpus_rows))

    records = []
    for j in progress(range(len(selected)), verbose=verbose, desc="LaVCa", total=len(selected), unit="unit"):
        idx = top[j]
        p_top = np.asarray(present[row_of[idx]].mean(axis=0)).ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(p_top > 0, p_top * np.log(p_top / p_all), 0.0)
        order = np.lexsort((vocabulary, -score))  # best score first, then alphabetical
        best = [k for k in order[:n_keywords] if score[k] > 0]
        words = [str(vocabulary[k]) for k in best]
        top_captions = [texts[i] for i in idx]
        sentence = summarize(top_captions, words) if summarize is not None else template.format(keywords=_join(words))
        records.append((int(selected[j]), words, score[best], str(sentence), idx))
    return pd.DataFrame(records, columns=["unit", "keywords", "keyword_scores", "sentence", "top_images"])


def score_captions(
    captions: Sequence[str],
    text_embed: Callable[[list[str]], Any],
    image_embeddings: Any,
    responses: Any,
) -> np.ndarray:
    """LaVCa's caption score: how well a caption's text embedding predicts its unit's responses.

    For unit ``j`` with caption ``c_j``: the cosine similarity between the text
    embedding of ``c_j`` and every evaluation image's embedding, correlated
    (Pearson r) across images with the unit's responses to those images.
    Captions from any method (BrainSCUBA, LaVCa, hand-written) are scored on
    this one scale.

    Parameters
    ----------
    captions : sequence of str of length n_units
        One caption per unit (column of ``responses``).
    text_embed : callable
        ``text_embed(list of str) -> array of shape (n, n_features)`` in the
        same space as ``image_embeddings``: e.g. the ``encode_text`` of an
        open_clip :class:`neurodec.backbones.Backbone` whose image tower made
        the image embeddings.
    image_embeddings : array of shape (n_images, n_features)
        Embeddings of the evaluation images.
    responses : array of shape (n_images, n_units)
        The units' measured or predicted responses to the evaluation images.

    Returns
    -------
    scores : array of shape (n_units,)
        Pearson r per unit; NaN where either series is constant.
    """
    where = "score_captions"
    images = _as_array(image_embeddings, "image_embeddings", where, 2)
    y = _as_array(responses, "responses", where, 2)
    captions = list(captions)
    if y.shape[0] != images.shape[0]:
        raise ValueError(
            f"{where}: 'responses' has {y.shape[0]} images (rows) but 'image_embeddings' has {images.shape[0]}."
        )
    if len(captions) != y.shape[1] or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"{where}: 'captions' must be {y.shape[1]} strings, one per unit (column of 'responses').")
    text = _as_array(text_embed(captions), "text_embed output", where, 2)
    if text.shape != (len(captions), images.shape[1]):
        raise ValueError(
            f"{where}: 'text_embed' returned shape {text.shape}; expected ({len(captions)}, {images.shape[1]}), "
            f"the image embeddings' {images.shape[1]} features."
        )
    tiny = np.finfo(np.float64).tiny
    images = images / np.maximum(np.linalg.norm(images, axis=1, keepdims=True), tiny)
    text = text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), tiny)
    similarity = images @ text.T  # (n_images, n_units)
    a = similarity - similarity.mean(axis=0)
    b = y - y.mean(axis=0)
    denominator = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=0) / denominator, np.nan)

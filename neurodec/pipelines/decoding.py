"""The decoding pipeline: responses -> decoded embeddings -> retrieval, reconstructions, brain captions.

Wiring only. The encoding study named by the config supplies the subject's
responses, stimuli and the target embeddings (the study's cached backbone
features, :func:`~neurodec.pipelines.encoding.load_backbone_features`).
Repeats are averaged per image; a :class:`~neurodec.decoding.LinearDecoder`
is fitted on the training images and decodes the test images; then the
public API a notebook uses scores and renders them
(:func:`~neurodec.metrics.retrieval_top_k`,
:func:`~neurodec.metrics.two_way_identification`,
:func:`~neurodec.decoding.reconstruct_images`,
:class:`~neurodec.discovery.PrefixCaptioner`,
:func:`~neurodec.metrics.caption_scores`).

Every piece (decoded embeddings, decoded VAE latents, captions,
reconstructions) is written atomically under
``<outputs.root>/derivatives/neurodec/sub-<label>/decoding/`` with a
fingerprint of its settings and inputs; a re-run reloads each piece whose
fingerprint matches instead of recomputing it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._io import atomic_path, warn_if_other_version
from .._logging import get_logger
from .decoding_config import DecodingConfig

__all__ = ["DecodingResult", "run_decoding", "run_decoding_subject"]

logger = get_logger(__name__)


@dataclasses.dataclass
class DecodingResult:
    """What :func:`run_decoding` produced.

    Attributes
    ----------
    metrics : dict of subject -> dict
        The scores written to each subject's metrics JSON.
    outputs : dict of subject -> list of Path
        Files written or reused per subject (the report last).
    reused : dict of subject -> list of str
        The pieces a re-run reloaded instead of recomputing.
    """

    metrics: dict[Any, dict[str, Any]]
    outputs: dict[Any, list[Path]]
    reused: dict[Any, list[str]]


def _fingerprint(settings: Any, *arrays: np.ndarray) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class _Pieces:
    """Resumable pieces of one subject's run: ``.npz`` files holding ``fingerprint`` and ``neurodec_version`` entries."""

    def __init__(self, folder: Path, subject: str, target: str) -> None:
        self.folder, self.subject, self.target = folder, subject, target
        self.files: list[Path] = []
        self.reused: list[str] = []

    def path(self, desc: str, suffix: str, extension: str) -> Path:
        from ..viz import bids_filename

        return self.folder / bids_filename(self.subject, suffix, extension, target=self.target, desc=desc)

    def arrays(self, desc: str, fingerprint: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        path = self.path(desc, "decoding", ".npz")
        self.files.append(path)
        if path.is_file():
            with np.load(path, allow_pickle=False) as stored:
                if "fingerprint" in stored and str(stored["fingerprint"]) == fingerprint:
                    self.reused.append(desc)
                    written_by = str(stored["neurodec_version"]) if "neurodec_version" in stored else None
                    warn_if_other_version(path, written_by)
                    return {k: stored[k] for k in stored.files if k not in ("fingerprint", "neurodec_version")}
        result = compute()
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, fingerprint=np.asarray(fingerprint),
                                    neurodec_version=np.asarray(__version__), **result)
        return result


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 or [0, 1] images (n, H, W, 3) -> float32 (n, size, size, 3) in [0, 1] (antialiased bilinear)."""
    import torch

    batch = torch.from_numpy(np.asarray(images, dtype=np.float32)).permute(0, 3, 1, 2)
    if np.asarray(images).dtype == np.uint8:
        batch = batch / 255.0
    if batch.shape[-2:] != (size, size):
        batch = torch.nn.functional.interpolate(batch, size=(size, size), mode="bilinear", antialias=True,
                                                align_corners=False)
    return batch.clamp(0, 1).permute(0, 2, 3, 1).numpy()


@dataclasses.dataclass
class _Data:
    """One subject's repeat-averaged responses, split, with the target embeddings of each image."""

    stimuli: Any
    train_ids: np.ndarray
    test_ids: np.ndarray
    X_train: np.ndarray
    X_test: np.ndarray
    Y_train: np.ndarray
    Y_test: np.ndarray
    subject: str

    def images(self, ids: np.ndarray, size: int) -> np.ndarray:
        return _resize(np.stack([self.stimuli.get_image(i) for i in ids]), size)


def _load(config: DecodingConfig, subject: Any, verbose: bool) -> _Data:
    from .encoding import load_backbone_features, load_subject

    study = config.study
    responses, stimuli, train_ids = load_subject(study, subject, verbose=verbose)
    name, layer = config.target.rsplit("/", 1)
    bb = next(b for b in study.backbones if b.name == name and layer in (b.layers or (layer,)))
    _, features = load_backbone_features(study, bb, stimuli, train_ids, verbose=verbose)
    averaged = responses.average_repeats()
    train, test = averaged.split("train"), averaged.split("test")
    flat = lambda r: np.asarray(r.data, dtype=np.float32).reshape(r.n_trials, -1)  # noqa: E731
    return _Data(
        stimuli=stimuli, train_ids=train.stimulus_ids, test_ids=test.stimulus_ids, X_train=flat(train),
        X_test=flat(test), Y_train=np.asarray(features[layer].align(train.stimulus_ids), dtype=np.float32),
        Y_test=np.asarray(features[layer].align(test.stimulus_ids), dtype=np.float32), subject=responses.subject,
    )


def _decode(config: DecodingConfig, X_train: np.ndarray, Y_train: np.ndarray, X_test: np.ndarray,
            verbose: bool) -> dict[str, np.ndarray]:
    from ..decoding import LinearDecoder

    decoder = LinearDecoder(device=config.device, verbose=verbose, **config.decoder).fit(X_train, Y_train)
    return {"pred": decoder.predict(X_test).astype(np.float32), "best_alphas": decoder.best_alphas_}


def _scores(config: DecodingConfig, pred: np.ndarray, true: np.ndarray) -> dict[str, Any]:
    from ..metrics import retrieval_top_k, two_way_identification

    n_way = min(config.retrieval["n_way"], len(true))
    scores: dict[str, Any] = {"n_test": int(len(true)), "n_way": int(n_way)}
    for k in (1, 5):
        if k < n_way:
            result = retrieval_top_k(pred, true, k=k, n_way=n_way, n_draws=config.retrieval["n_draws"],
                                     random_state=config.random_state)
            scores[f"top{k}"] = {"image_retrieval": result.image_retrieval, "brain_retrieval": result.brain_retrieval,
                                 "chance": result.chance}
    scores["two_way_identification"] = two_way_identification(pred, true).mean
    return scores


def _hygiene(config: DecodingConfig, pred: Any, true: Any, data: _Data, metrics: Any) -> list[dict[str, Any]]:
    """Each metric on all test images and on the half least similar to any training image, with bootstrap CIs."""
    from ..decoding import evaluate_decoding

    n = len(pred)
    table = evaluate_decoding(pred, true, data.Y_train, metrics=metrics, test_embeddings=data.Y_test[:n],
                              n_way=min(config.retrieval["n_way"], n), random_state=config.random_state)
    return table.to_dict(orient="records")


def _pipeline(config: DecodingConfig, embedding_dim: int) -> Any:
    from .._device import resolve_device
    from ..decoding import load_reconstruction_pipeline
    from ..discovery import make_small_unclip_pipeline

    section = config.reconstruction
    if section["pipeline"] == "small":
        pipe = make_small_unclip_pipeline(embedding_dim=embedding_dim, image_size=section["image_size"],
                                          scheduler=section["scheduler"], random_state=config.random_state)
        return pipe.to(resolve_device(config.device))
    return load_reconstruction_pipeline(section["pipeline"], scheduler=section["scheduler"], device=config.device,
                                        **section["pipeline_options"])


def _captions(config: DecodingConfig, data: _Data, pred: np.ndarray, pieces: _Pieces, verbose: bool) -> dict:
    """Brain captions (the captioner on decoded embeddings), the nearest training caption, and the references."""
    from ..decoding import nearest_training_captions
    from ..discovery import PrefixCaptioner, load_prefix_captioner, make_small_language_model

    section = config.captions
    if data.stimuli.captions is None:
        raise ValueError(f"{config.source}: captions need the stimuli's captions; the study's stimuli have none.")

    # The captioner and the baseline work on embeddings z-scored with training statistics: raw features
    # (ReLU outputs, CLIP embeddings) share a large common component, so every image's embedding points
    # nearly the same way and neither a prefix captioner nor a cosine nearest neighbour can tell them apart.
    mean, std = data.Y_train.mean(axis=0), data.Y_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    train_z, pred_z = (data.Y_train - mean) / std, (pred - mean) / std

    def compute() -> dict[str, np.ndarray]:
        source = section["captioner"]
        if source != "small" and (Path(source) / "mapping.safetensors").is_file():
            # A saved captioner was trained on raw embeddings of its own (e.g. CLIP on COCO): give it those.
            captioner, inputs = load_prefix_captioner(source, device=config.device), pred
        else:
            inputs = pred_z
            pairs = [(row, c) for row, i in enumerate(data.train_ids) for c in data.stimuli.get_captions(i)]
            texts = [c for _, c in pairs]
            params = {"random_state": config.random_state, "device": config.device, "verbose": verbose,
                      **section["train"]}
            if source == "small":
                decoder, tokenizer = make_small_language_model(texts, random_state=config.random_state)
                captioner = PrefixCaptioner(decoder, tokenizer, **params)
            else:
                captioner = PrefixCaptioner(source, **params)
            captioner.fit(train_z[[row for row, _ in pairs]], texts)
        brain = captioner.generate(inputs, **section["generate"])
        first = [data.stimuli.get_captions(i)[0] for i in data.train_ids]
        baseline, _ = nearest_training_captions(pred_z, train_z, first)
        return {"brain": np.asarray(brain, dtype=str), "nearest": np.asarray(baseline, dtype=str)}

    fingerprint = _fingerprint({"captions": section, "target": config.target, "seed": config.random_state},
                               pred, data.Y_train)
    captions = pieces.arrays("captions", fingerprint, compute)
    return {"brain": [str(c) for c in captions["brain"]], "nearest": [str(c) for c in captions["nearest"]],
            "references": [data.stimuli.get_captions(i) for i in data.test_ids]}


def _caption_scores(config: DecodingConfig, captions: dict) -> dict[str, dict[str, float]]:
    from ..metrics import caption_scores

    metrics = list(config.captions["metrics"])
    return {kind: caption_scores(captions[kind], captions["references"], protocol="coco", metrics=metrics).scores
            for kind in ("brain", "nearest")}


def _reconstruct(config: DecodingConfig, data: _Data, pred: np.ndarray, captions: dict | None, pieces: _Pieces,
                 verbose: bool) -> dict[str, np.ndarray]:
    from ..decoding import encode_images_to_latents, reconstruct_images

    section = config.reconstruction
    n = min(section["n_images"], len(pred))
    prompts = captions["brain"][:n] if section["prompts"] and captions is not None else None
    settings = {"reconstruction": section, "decoder": config.decoder, "seed": config.random_state, "prompts": prompts}
    state: dict[str, Any] = {}

    def pipe() -> Any:
        if "pipe" not in state:
            state["pipe"] = _pipeline(config, pred.shape[1])
        return state["pipe"]

    init = None
    if section["low_level"]:
        size = section["image_size"]

        def latents() -> dict[str, np.ndarray]:
            targets = encode_images_to_latents(pipe(), data.images(data.train_ids, size), verbose=verbose)
            return _decode(config, data.X_train, targets, data.X_test[:n], verbose)

        # The low-level decoder depends on the pipeline's VAE and the image size, not on the sampling options.
        vae_settings = {k: section[k] for k in ("pipeline", "image_size", "pipeline_options")}
        init = pieces.arrays("latents", _fingerprint({"vae": vae_settings, "decoder": config.decoder,
                                                      "seed": config.random_state}, data.X_train, data.X_test[:n]),
                             latents)["pred"]

    def images() -> dict[str, np.ndarray]:
        result = reconstruct_images(pipe(), pred[:n], init_latents=init, prompts=prompts,
                                    random_state=config.random_state, verbose=verbose, **section["options"])
        out = {"images": result.images}
        if result.init_images is not None:
            out["init_images"] = result.init_images
        return out

    fingerprint = _fingerprint(settings, pred[:n], *(() if init is None else (init,)))
    return pieces.arrays("reconstructions", fingerprint, images)


def _image_scores(config: DecodingConfig, recon: dict[str, np.ndarray], true: np.ndarray) -> dict[str, float]:
    from ..metrics import feature_metric, pixcorr, ssim

    section = config.reconstruction
    scores = {"pixcorr": pixcorr(recon["images"], true).mean, "ssim": ssim(recon["images"], true).mean}
    for name in section["feature_metrics"]:
        scores[name] = feature_metric(recon["images"], true, name, weights=section["feature_weights"],
                                      device=config.device).mean
    if "init_images" in recon:
        scores.update(low_level_pixcorr=pixcorr(recon["init_images"], true).mean,
                      low_level_ssim=ssim(recon["init_images"], true).mean)
    return scores


def run_decoding_subject(config: DecodingConfig, subject: Any, *, verbose: bool = True) -> tuple[dict, list[Path], list[str]]:
    """Decode, score, reconstruct and caption one subject; returns (metrics, files, reused pieces)."""
    from ..viz import derivatives_folder
    from .decoding_outputs import write_decoding_outputs

    data = _load(config, subject, verbose)
    folder = derivatives_folder(config.output_root, data.subject, datatype="decoding")
    pieces = _Pieces(folder, data.subject, config.target)
    settings = {"decoder": config.decoder, "target": config.target, "device": config.device}
    decoded = pieces.arrays("embeddings", _fingerprint(settings, data.X_train, data.Y_train, data.X_test),
                            lambda: _decode(config, data.X_train, data.Y_train, data.X_test, verbose))
    pred = decoded["pred"]
    metrics: dict[str, Any] = {"subject": data.subject, "target": config.target,
                               "n_train": int(len(data.train_ids)), "n_units": int(data.X_train.shape[1]),
                               "embeddings": _scores(config, pred, data.Y_test)}
    metrics["embeddings"]["subsets"] = _hygiene(
        config, pred, data.Y_test, data,
        ("cosine", "image_retrieval", "brain_retrieval", "two_way_identification"),
    )
    captions = recon = None
    if config.captions is not None:
        captions = _captions(config, data, pred, pieces, verbose)
        metrics["captions"] = _caption_scores(config, captions)
    if config.reconstruction is not None:
        recon = _reconstruct(config, data, pred, captions, pieces, verbose)
        true = data.images(data.test_ids[:len(recon["images"])], recon["images"].shape[1])
        metrics["reconstruction"] = {"n_images": int(len(recon["images"])), **_image_scores(config, recon, true)}
        if len(true) >= 2:
            from ..metrics import pixcorr, ssim

            metrics["reconstruction"]["subsets"] = _hygiene(config, recon["images"], true, data,
                                                            {"pixcorr": pixcorr, "ssim": ssim})
        recon = {**recon, "true": true}
    files = write_decoding_outputs(config, pieces, metrics, captions, recon, data.test_ids)
    return metrics, files, pieces.reused


def run_decoding(config: DecodingConfig, *, verbose: bool = True) -> DecodingResult:
    """Run the decoding study of ``config`` for each of its subjects, one after the other.

    Parameters
    ----------
    config : DecodingConfig
        From :func:`~neurodec.pipelines.decoding_config.load_decoding_config`.
    verbose : bool
        Progress bars and log messages.

    Returns
    -------
    DecodingResult
    """
    metrics, outputs, reused = {}, {}, {}
    for subject in config.subjects:
        metrics[subject], outputs[subject], reused[subject] = run_decoding_subject(config, subject, verbose=verbose)
    return DecodingResult(metrics=metrics, outputs=outputs, reused=reused)

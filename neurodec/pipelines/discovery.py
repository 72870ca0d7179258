"""The discovery pipeline: a fitted encoding model -> MDS clusters, brain-guided images, voxel captions.

Wiring only. The encoding study named by the config supplies the subject's
responses and stimuli, the backbone and its cached features, and the fitted
model (reused, or fitted once, exactly as ``neurodec run`` of the study does:
:func:`~neurodec.pipelines.encoding.fit_or_load_study_model`). Each method
then calls the public API a notebook would use
(:class:`~neurodec.discovery.BrainEncoder`,
:func:`~neurodec.discovery.most_discriminative_stimuli`,
:func:`~neurodec.discovery.brain_guided_images`,
:func:`~neurodec.discovery.brainscuba_captions`,
:func:`~neurodec.discovery.lavca_captions`), and
:mod:`~neurodec.pipelines.discovery_outputs` writes what they found under
``<outputs.root>/derivatives/neurodec/sub-<label>/discovery/`` with an HTML
report whose Methods section states every setting.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from .._logging import get_logger
from .discovery_config import DiscoveryConfig
from .discovery_outputs import SubjectOutputs

__all__ = ["DiscoveryResult", "run_discovery", "run_discovery_subject"]

logger = get_logger(__name__)


@dataclasses.dataclass
class DiscoveryResult:
    """What :func:`run_discovery` produced.

    Attributes
    ----------
    results : dict of subject -> dict of method -> object
        "mds": :class:`~neurodec.discovery.MDSResult`; "braindive": dict with
        "guided", "unguided" (:class:`~neurodec.discovery.GuidedImages` or
        None) and "comparison"; "captions": dict of method -> DataFrame.
    outputs : dict of subject -> list of Path
        Files written per subject (the report last).
    """

    results: dict[Any, dict[str, Any]]
    outputs: dict[Any, list[Path]]


@dataclasses.dataclass
class _Subject:
    """One subject's data and fitted model, as the encoding study made them."""

    responses: Any
    stimuli: Any
    train_ids: np.ndarray
    backbone: Any
    features: Any
    model: Any

    def standardized(self, features: np.ndarray) -> np.ndarray:
        """Features as the model's ridge weights see them: ``(X - feature_mean_) / feature_scale_``, float32."""
        return ((features - self.model.feature_mean_) / self.model.feature_scale_).astype(np.float32)

    def units(self, selection: dict[str, list[str] | None]) -> np.ndarray:
        from ..discovery._units import select_units

        return select_units(selection, self.model, self.responses)

    def encoder(self, units: np.ndarray, device: str) -> Any:
        from ..discovery import BrainEncoder

        return BrainEncoder.from_fitted(
            self.backbone, self.model, self.features, units=units, responses=self.responses, device=device
        )


def _load_subject(config: DiscoveryConfig, subject: Any, verbose: bool) -> _Subject:
    from .encoding import fit_or_load_study_model, load_backbone_features, load_subject

    study = config.study
    responses, stimuli, train_ids = load_subject(study, subject, verbose=verbose)
    name, layer = config.model.rsplit("/", 1)
    bb = next(b for b in study.backbones if b.name == name and layer in (b.layers or (layer,)))
    backbone, features = load_backbone_features(study, bb, stimuli, train_ids, verbose=verbose)
    if layer not in features:
        raise ValueError(f"{config.source}: the study's backbone {name!r} extracted no layer {layer!r}.")
    model = fit_or_load_study_model(study, subject, config.model, features[layer], responses, verbose=verbose)
    return _Subject(responses, stimuli, np.asarray(train_ids), backbone, features[layer], model)


def _run_mds(config: DiscoveryConfig, data: _Subject, units: np.ndarray, out: SubjectOutputs, verbose: bool) -> Any:
    from ..discovery import most_discriminative_stimuli

    section = config.mds
    encoder = data.encoder(units, config.device)
    size = section["image_size"]
    result = most_discriminative_stimuli(
        encoder, (3, size, size), section["n_clusters"], random_state=config.random_state, device=config.device,
        verbose=verbose, **section["options"],
    )
    out.mds(result, units, data.responses, section, config.model)
    return result


def _top_natural(encoder: Any, objective: Any, stimuli: Any, k: int, verbose: bool) -> np.ndarray:
    """The ``k`` stimuli with the highest predicted objective, as an array (k, H, W, 3)."""
    import torch

    from ..discovery import predict_responses

    predicted = predict_responses(encoder, stimuli, verbose=verbose)
    scores = objective(torch.as_tensor(np.asarray(predicted.data, dtype=np.float32))).numpy()
    order = np.argsort(-scores, kind="stable")[:k]
    ids = predicted.trials["stimulus_id"].to_numpy()[order]
    return np.stack([stimuli.get_image(i) for i in ids])


def _run_braindive(
    config: DiscoveryConfig, data: _Subject, units: np.ndarray, out: SubjectOutputs, verbose: bool
) -> dict[str, Any]:
    from ..discovery import (
        brain_guided_images,
        compare_predicted_activation,
        load_diffusion_pipeline,
        make_small_diffusion_pipeline,
        roi_mean,
    )

    section = config.braindive
    encoder = data.encoder(units, config.device)
    objective = roi_mean(np.arange(units.size))
    if section["pipeline"] == "small":
        pipe = make_small_diffusion_pipeline(scheduler=section["scheduler"], random_state=config.random_state)
        if config.device != "auto":
            pipe = pipe.to(config.device)
    else:
        pipe = load_diffusion_pipeline(
            section["pipeline"], scheduler=section["scheduler"], device=config.device, **section["pipeline_options"]
        )
    options = {"image_size": section["image_size"], **section["options"]}
    guided = brain_guided_images(pipe, encoder, objective=objective, seeds=section["seeds"], verbose=verbose, **options)
    unguided = None
    if section["unguided"]:
        unguided = brain_guided_images(
            pipe, encoder, objective=objective, seeds=section["seeds"], verbose=verbose, **{**options, "guidance_scale": 0.0}
        )
    natural = _top_natural(encoder, objective, data.stimuli, section["natural_top_k"], verbose)
    comparison = compare_predicted_activation(
        guided, natural, encoder, objective=objective, image_size=section["image_size"], device=config.device
    )
    result = {"guided": guided, "unguided": unguided, "comparison": comparison}
    out.braindive(result, units, section, config.model)
    return result


def _captioner(config: DiscoveryConfig, data: _Subject, verbose: bool) -> Any:
    """A saved PrefixCaptioner, or one trained on the study's training stimuli and their captions."""
    from ..discovery import PrefixCaptioner, load_prefix_captioner, make_small_language_model

    section = config.captions
    source = section["captioner"]
    if source != "small" and (Path(source) / "mapping.safetensors").is_file():
        return load_prefix_captioner(source, device=config.device)
    if data.stimuli.captions is None:
        raise ValueError(
            f"{config.source}: captions.captioner {source!r} is trained on the training stimuli's captions, but the "
            f"study's stimuli have none; give captions in the study's dataset.stimulus_options (e.g. NSD's COCO "
            "annotation files) or a saved PrefixCaptioner folder."
        )
    # One (embedding, caption) pair per caption of every training stimulus.
    pairs = [(i, c) for i in data.train_ids for c in data.stimuli.get_captions(i)]
    embeddings = data.standardized(data.features.align([i for i, _ in pairs]))
    captions = [c for _, c in pairs]
    params = {"random_state": config.random_state, "device": config.device, "verbose": verbose, **section["train"]}
    if source == "small":
        decoder, tokenizer = make_small_language_model(captions, random_state=config.random_state)
        captioner = PrefixCaptioner(decoder, tokenizer, **params)
    else:
        captioner = PrefixCaptioner(source, **params)
    return captioner.fit(embeddings, captions)


def _run_captions(
    config: DiscoveryConfig, data: _Subject, units: np.ndarray, out: SubjectOutputs, verbose: bool
) -> dict[str, Any]:
    from ..discovery import brainscuba_captions, lavca_captions

    section = config.captions
    tables: dict[str, Any] = {}
    if "brainscuba" in section["methods"]:
        # The projection and the captioner work in the model's standardized feature space, where its ridge
        # weights live: raw backbone features share a large common component (ReLU outputs), so every
        # image's embedding points nearly the same way and the softmax over the bank cannot pick images.
        bank = data.standardized(np.asarray(data.features.data))
        captioner = _captioner(config, data, verbose)
        table = brainscuba_captions(
            data.model.coef_[:, units], bank, captioner, device=config.device, verbose=verbose, **section["brainscuba"]
        )
        table["unit"] = units[table["unit"].to_numpy()]
        tables["brainscuba"] = table
    if "lavca" in section["methods"]:
        if data.stimuli.captions is None:
            raise ValueError(f"{config.source}: LaVCa needs the stimuli's captions; the study's stimuli have none.")
        ids = data.features.stimulus_ids
        predictions = data.model.predict(data.features, stimulus_ids=ids)[:, units]
        captions = [" ".join(data.stimuli.get_captions(i)) for i in ids]
        table = lavca_captions(predictions, captions, verbose=verbose, **section["lavca"])
        table["unit"] = units[table["unit"].to_numpy()]
        tables["lavca"] = table
    out.captions(tables, data.responses, section, config.model)
    return tables


_RUNNERS = {"mds": _run_mds, "braindive": _run_braindive, "captions": _run_captions}


def run_discovery_subject(config: DiscoveryConfig, subject: Any, *, verbose: bool = True) -> tuple[dict, list[Path]]:
    """Run every method of ``config`` for one subject; returns (results by method, written files)."""
    data = _load_subject(config, subject, verbose)
    # Every method's units first: a wrong ROI label stops the run before any method's work.
    units = {method: data.units(getattr(config, method)["units"]) for method in config.methods}
    out = SubjectOutputs(config, data.responses, data.model)
    results = {}
    for method in config.methods:
        logger.info("Subject %s: %s on %d units", subject, method, units[method].size)
        results[method] = _RUNNERS[method](config, data, units[method], out, verbose)
    return results, out.finish()


def run_discovery(config: DiscoveryConfig, *, verbose: bool = True) -> DiscoveryResult:
    """Run the discovery methods of ``config`` for each of its subjects, one after the other.

    Returns
    -------
    DiscoveryResult
    """
    results, outputs = {}, {}
    for subject in config.subjects:
        results[subject], outputs[subject] = run_discovery_subject(config, subject, verbose=verbose)
    return DiscoveryResult(results=results, outputs=outputs)

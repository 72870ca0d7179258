"""High-level reconstruction metrics: network features of reconstructions vs ground truths.

Each named metric fixes a network of :mod:`neurodec.backbones`, the layer read
out, the preprocessing and the score, as MindEye's evaluation (Scotti et al.
2023, 2024) computes them after Brain-Diffuser (Ozcelik & VanRullen 2023):

============  ============================  ===========  ===================  ======================
metric        backbone                      layer        preprocessing        score
============  ============================  ===========  ===================  ======================
alexnet2      torchvision/alexnet           features.4   256 bilinear, IN     two-way identification
alexnet5      torchvision/alexnet           features.11  256 bilinear, IN     two-way identification
inception     torchvision/inception_v3      avgpool      342 bilinear, IN     two-way identification
clip          open_clip/ViT-L-14:openai     output       224 bicubic, CLIP    two-way identification
efficientnet  torchvision/efficientnet_b1   avgpool      255 bilinear, IN     correlation distance
swav          swav_resnet50                 avgpool      224 bilinear, IN     correlation distance
============  ============================  ===========  ===================  ======================

"256 bilinear" is a resize of the shorter side of the [0, 1] image tensor
(no crop: NSD images are square), "IN" ImageNet mean/std normalization and
"CLIP" OpenAI CLIP's; feature maps are flattened (AlexNet's layer 2 gives
192 x 31 x 31 values per image at 256 px). AlexNet layers 2 and 5 are the ReLU
outputs after the second and fifth convolutions; CLIP's output is the image
embedding (``encode_image``, not normalized: correlations ignore scale).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from .._docs import fill_doc
from ._arrays import as_image_batch, unit_float
from .identification import correlation_distance, two_way_identification
from .images import ImageScores

if TYPE_CHECKING:
    from ..backbones import Backbone

__all__ = ["FEATURE_METRICS", "FeatureMetric", "feature_metric", "metric_features"]

_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


@dataclasses.dataclass(frozen=True)
class FeatureMetric:
    """How one feature-based reconstruction metric is computed.

    Attributes
    ----------
    name : str
        Metric name (a key of :data:`FEATURE_METRICS`).
    backbone : str
        Registered backbone (see :func:`neurodec.backbones.list_backbones`).
    layer : str
        Module whose output is read ("output" for the model's output).
    resize : int
        Shorter side the image tensor is resized to (no crop).
    interpolation : {"bilinear", "bicubic"}
        Resize interpolation.
    mean, std : tuple of float
        Channel normalization after resizing.
    score : {"two_way", "distance"}
        :func:`two_way_identification` (higher is better) or
        :func:`correlation_distance` (lower is better).
    """

    name: str
    backbone: str
    layer: str
    resize: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    score: str


#: The field's feature-based metrics (see the module table).
FEATURE_METRICS: dict[str, FeatureMetric] = {
    m.name: m
    for m in (
        FeatureMetric("alexnet2", "torchvision/alexnet", "features.4", 256, "bilinear", *_IMAGENET, "two_way"),
        FeatureMetric("alexnet5", "torchvision/alexnet", "features.11", 256, "bilinear", *_IMAGENET, "two_way"),
        FeatureMetric("inception", "torchvision/inception_v3", "avgpool", 342, "bilinear", *_IMAGENET, "two_way"),
        FeatureMetric("clip", "open_clip/ViT-L-14:openai", "output", 224, "bicubic", *_CLIP, "two_way"),
        FeatureMetric("efficientnet", "torchvision/efficientnet_b1", "avgpool", 255, "bilinear", *_IMAGENET,
                      "distance"),
        FeatureMetric("swav", "swav_resnet50", "avgpool", 224, "bilinear", *_IMAGENET, "distance"),
    )
}


def _get_metric(metric: str) -> FeatureMetric:
    if metric not in FEATURE_METRICS:
        raise ValueError(
            f"The 'metric' parameter must be one of {sorted(FEATURE_METRICS)}. Got {metric!r} instead."
        )
    return FEATURE_METRICS[metric]


@fill_doc
def metric_features(
    images: Any,
    metric: str,
    *,
    backbone: "Backbone | None" = None,
    weights: str = "pretrained",
    antialias: bool = True,
    batch_size: int = 32,
    device: Any = "auto",
    verbose: bool | int = False,
) -> np.ndarray:
    """Features of ``images`` as feature metric ``metric`` reads them.

    Parameters
    ----------
    images : array of shape (n_images, height, width, 3) or tensor of shape (n_images, 3, height, width)
        uint8 or float in [0, 1].
    metric : str
        A key of :data:`FEATURE_METRICS`.
    backbone : Backbone, optional
        An already loaded network (reused across calls); by default the
        metric's backbone is loaded with ``weights``. It must have the
        metric's layer; another network than the metric's warns. It runs
        where it lives (``device`` is then not used).
    weights : {"pretrained", "random"} or path-like
        Weights of the loaded backbone (see :func:`neurodec.backbones.load`);
        only "pretrained" (or the authors' checkpoint file) gives the field's numbers.
    antialias : bool
        Antialiasing of the resize (see :mod:`neurodec.metrics.images`).
    batch_size : int
        Images per forward pass.
    %(device)s
    %(verbose)s

    Returns
    -------
    array of shape (n_images, n_features)
        Flattened float32 features.
    """
    import torch
    from tqdm.auto import tqdm

    from .._torchvision import enable_torchvision
    from ..backbones import load

    tv = enable_torchvision()  # torchvision's ops may not match torch here; see neurodec._torchvision
    resize, normalize = tv.transforms.functional.resize, tv.transforms.functional.normalize
    spec = _get_metric(metric)
    tensor = as_image_batch(images, name="images", caller="metric_features")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"The 'batch_size' parameter of metric_features must be a positive integer. Got {batch_size!r}.")
    if backbone is None:
        backbone = load(spec.backbone, weights=weights, device=device)
    elif backbone.name != spec.backbone:
        warnings.warn(
            f"metric {metric!r} is defined on {spec.backbone!r}; the backbone given is {backbone.name!r}, so the "
            "scores are not the protocol's. Pass backbone=None (or that backbone) to silence this warning.",
            UserWarning,
            stacklevel=2,
        )
    dev = backbone.device
    backbone.check_layers([spec.layer])
    model = backbone.model
    module = model if spec.layer == "output" else model.get_submodule(spec.layer)
    captured: list[torch.Tensor] = []
    # clone: torchvision's ReLUs are in place; the hooked output must not change afterwards.
    handle = module.register_forward_hook(lambda mod, inp, out: captured.append(out.detach().float().clone()))
    interpolation = tv.transforms.InterpolationMode(spec.interpolation)
    outputs = []
    try:
        with torch.no_grad():
            for start in tqdm(range(0, len(tensor), batch_size), disable=not verbose, desc=f"{metric} features"):
                batch = unit_float(tensor[start:start + batch_size])
                batch = resize(batch, spec.resize, interpolation, antialias=antialias)
                batch = normalize(batch, spec.mean, spec.std).to(dev)
                captured.clear()
                model(batch)
                outputs.append(captured[-1].flatten(1).cpu().numpy())
    finally:
        handle.remove()
    return np.concatenate(outputs)


@fill_doc
def feature_metric(
    pred_images: Any,
    true_images: Any,
    metric: str,
    *,
    backbone: "Backbone | None" = None,
    weights: str = "pretrained",
    antialias: bool = True,
    batch_size: int = 32,
    device: Any = "auto",
    verbose: bool | int = False,
) -> ImageScores:
    """A feature-based reconstruction metric: AlexNet(2), AlexNet(5), Inception, CLIP, EfficientNet or SwAV.

    Parameters
    ----------
    pred_images, true_images : array of shape (n_images, height, width, 3) or tensor of shape (n_images, 3, height, width)
        Reconstructions and ground truths, uint8 or float in [0, 1], in the same order.
    metric : {"alexnet2", "alexnet5", "inception", "clip", "efficientnet", "swav"}
        See the table of :mod:`neurodec.metrics.features`.
    backbone : Backbone, optional
        The metric's network, already loaded (it runs where it lives); by
        default loaded with ``weights`` on ``device``.
    weights : {"pretrained", "random"} or path-like
        Weights of the loaded backbone; SwAV's come from the authors' URL or a
        local copy of it (``weights="swav_800ep_pretrain.pth"``).
    antialias : bool
        Antialiasing of the resize.
    batch_size : int
        Images per forward pass.
    %(device)s
    %(verbose)s

    Returns
    -------
    ImageScores
        Two-way identification (fraction in [0, 1], higher is better) for the
        AlexNet, Inception and CLIP metrics; mean correlation distance (lower
        is better) for EfficientNet and SwAV.

    Notes
    -----
    Published values (NSD subjects 1, 2, 5, 7) to compare against with
    pretrained weights: Brain-Diffuser AlexNet(2) 94.2%%, AlexNet(5) 96.2%%
    (Ozcelik & VanRullen 2023); MindEye2 Inception 95.4%%, CLIP 93.0%%,
    EfficientNet .619, SwAV .344 (Scotti et al. 2024).
    """
    spec = _get_metric(metric)
    pred = as_image_batch(pred_images, name="pred_images", caller="feature_metric")
    true = as_image_batch(true_images, name="true_images", caller="feature_metric")
    if pred.shape[0] != true.shape[0]:
        raise ValueError(
            f"feature_metric: 'pred_images' and 'true_images' must hold the same number of images. Got pred_images "
            f"of shape {tuple(pred.shape)} and true_images of shape {tuple(true.shape)}."
        )
    if backbone is None:
        from ..backbones import load

        backbone = load(spec.backbone, weights=weights, device=device)
    kwargs = dict(backbone=backbone, antialias=antialias, batch_size=batch_size, device=device, verbose=verbose)
    pred_f = metric_features(pred, metric, **kwargs)
    true_f = metric_features(true, metric, **kwargs)
    score = two_way_identification if spec.score == "two_way" else correlation_distance
    return score(pred_f, true_f)

"""A differentiable brain encoder: pixels in [0, 1] -> a fitted encoding model's predicted responses.

:class:`BrainEncoder` computes, as one torch module with gradients to the
input pixels, what :func:`neurodec.backbones.extract_features` followed by
:meth:`neurodec.encoding.EncodingModel.predict` computes: the backbone's
preprocessing (as tensor operations, see :mod:`._pixels`), the backbone's
forward pass with hooks on the layers of the model's feature spaces (stopping
after the last one, as extraction does), the same pooling
(:func:`~neurodec.backbones.pooling.pool_output`), each space's fitted PCA or
sparse random projection, the model's standardization and ridge weights.
Discovery methods (brain-guided diffusion, most discriminative stimuli,
voxel captions) consume it through the plain interface "images (N, 3, H, W)
in [0, 1] -> responses (N, n_units)".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._device import resolve_device
from ..backbones.extraction import _StopForward
from ..backbones.loading import OUTPUT, Backbone, feature_stages
from ..backbones.pooling import pool_output
from ..data.features import Features
from ._pixels import PixelPreprocess, pixel_steps
from ._units import select_units

if TYPE_CHECKING:
    import pandas as pd

    from ..data.responses import Responses
    from ..encoding.model import EncodingModel

__all__ = ["BrainEncoder"]

_META_KEYS = ("backbone", "weights", "preprocessing", "layer", "pooling", "grid", "reduction")


def _check_space(space: Features, backbone: Backbone) -> None:
    """Raise unless ``space`` was extracted from ``backbone`` (same name, weights, preprocessing)."""
    missing = [key for key in _META_KEYS if key not in space.meta]
    if missing:
        raise ValueError(
            f"Features {space.name!r} lack the provenance {missing} in their meta; the encoder needs features "
            "from neurodec.backbones.extract_features, which records layer, pooling and reducer."
        )
    preprocessing = hashlib.sha256(backbone.preprocess.description.encode()).hexdigest()
    for field, have, want in (
        ("backbone", backbone.name, space.meta["backbone"]),
        ("weights", backbone.weights, space.meta["weights"]),
        ("preprocessing", preprocessing, space.meta["preprocessing"]),
    ):
        if have != want:
            detail = (
                f" (the features were extracted with {space.meta.get('preprocessing_description')!r}, the "
                f"backbone preprocesses with {backbone.preprocess.description!r})" if field == "preprocessing"
                else f": features {want!r}, backbone {have!r}"
            )
            raise ValueError(
                f"Features {space.name!r} come from another backbone than the one given; their {field!r} "
                f"differs{detail}. Pass the backbone the features were extracted with."
            )
    if space.meta["reduction"] != "none" and "reducer" not in space.meta:
        raise ValueError(
            f"Features {space.name!r} were reduced ({space.meta['reduction']}) but their meta has no fitted "
            "'reducer'; pass the Features returned by extract_features (cached features keep it too)."
        )


def _reducer_tensors(reducer: Any, name: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(matrix of shape (n_in, n_out), mean of shape (n_in,) or None, output scale or None) of a fitted reducer."""
    from sklearn.decomposition import PCA
    from sklearn.random_projection import SparseRandomProjection

    if isinstance(reducer, PCA):
        scale = np.sqrt(reducer.explained_variance_) if reducer.whiten else None
        return reducer.components_.T, reducer.mean_, scale
    if isinstance(reducer, SparseRandomProjection):
        components = reducer.components_
        dense = components.toarray() if hasattr(components, "toarray") else np.asarray(components)
        return dense.T, None, None
    raise ValueError(
        f"Features {name!r} were reduced by a {type(reducer).__name__}; the encoder supports PCA and "
        "SparseRandomProjection (extract_features' 'pca' and 'srp')."
    )


class BrainEncoder(torch.nn.Module):
    """Images -> predicted brain responses, differentiable (build with :meth:`from_fitted`).

    Attributes
    ----------
    units_ : int array of shape (n_outputs,)
        The model's units this encoder predicts, in output column order.
    unit_info_ : pandas.DataFrame or None
        Their rows of the fit responses' ``units`` (ROI columns, coordinates), when given.
    subject_, space_, model_name_ : str
        Subject, space and feature-space names of the encoding model.
    modality_ : str
        Modality of the fit responses ("fmri" when they were not given).
    backbone_name_, weights_ : str
        The backbone and its weights' identity.
    preprocess_ : PixelPreprocess
        The differentiable preprocessing.

    Notes
    -----
    The encoder shares the backbone's modules (no copy): building it puts
    them in eval mode and, with ``freeze=True``, turns off their
    ``requires_grad``; moving the encoder moves the backbone (its ``device``
    is updated), and converting its dtype converts the backbone's. The encoder
    computes in float32; features extracted under CUDA autocast (their
    ``meta["precision"]`` is bfloat16 or float16) differ from it by that
    precision's rounding. Hooks live only during a forward pass, so the backbone stays
    usable for :func:`~neurodec.backbones.extract_features`.
    The resize step uses torch's antialiased interpolation where extraction
    uses PIL's on uint8 images; they agree up to interpolation error. For
    images already at the backbone's input size (resize and crop are no-ops)
    the encoder reproduces ``model.predict(extract_features(...))`` to float32
    rounding.
    """

    def __init__(
        self, backbone: Backbone, model: "EncodingModel", spaces: Sequence[Features], units: np.ndarray,
        unit_info: "pd.DataFrame | None", device: torch.device, modality: str = "fmri",
    ) -> None:
        super().__init__()
        self.root = backbone.root  # registered, so that .to() moves the whole model the tower belongs to
        object.__setattr__(self, "_tower", backbone.model)
        object.__setattr__(self, "_backbone", backbone)
        self.preprocess_ = PixelPreprocess(pixel_steps(backbone.preprocess.transform, name=backbone.name))
        self._channels = feature_stages(backbone.model)
        # One (layer, pooling, grid, reduced, has_mean, has_scale) per feature space, in the model's order.
        self._spaces: list[tuple[str, str, int, bool, bool, bool]] = []
        for i, space in enumerate(spaces):
            pooling = str(space.meta["pooling"])
            reducer = space.meta.get("reducer") if space.meta["reduction"] != "none" else None
            mean = scale = None
            if reducer is not None:
                matrix, mean, scale = _reducer_tensors(reducer, space.name)
                self.register_buffer(f"proj_{i}", torch.as_tensor(matrix, dtype=torch.float32))
                if mean is not None:
                    self.register_buffer(f"proj_mean_{i}", torch.as_tensor(mean, dtype=torch.float32))
                if scale is not None:
                    self.register_buffer(f"proj_scale_{i}", torch.as_tensor(scale, dtype=torch.float32))
            self._spaces.append((
                space.meta["layer"], "grid" if pooling.startswith("grid") else pooling, int(space.meta["grid"]),
                reducer is not None, mean is not None, scale is not None,
            ))
        self.register_buffer("feature_mean", torch.as_tensor(model.feature_mean_, dtype=torch.float32))
        self.register_buffer("feature_scale", torch.as_tensor(model.feature_scale_, dtype=torch.float32))
        self.register_buffer("coef", torch.as_tensor(np.asarray(model.coef_[:, units]), dtype=torch.float32))
        self.register_buffer("intercept", torch.as_tensor(np.asarray(model.intercept_)[units], dtype=torch.float32))
        self.units_ = np.asarray(units)
        self.unit_info_ = unit_info
        self.subject_, self.space_, self.model_name_ = model.subject_, model.space_, model.name_
        self.modality_ = modality
        self.backbone_name_, self.weights_ = backbone.name, backbone.weights
        self._calls_needed: int | None = None
        self.to(device)
        self.eval()

    # ---------------------------------------------------------------- build
    @classmethod
    def from_fitted(
        cls,
        backbone: Backbone,
        model: "EncodingModel",
        features: Features | Sequence[Features] | Mapping[str, Features],
        *,
        units: Any = None,
        responses: "Responses | None" = None,
        device: Any = None,
        freeze: bool = True,
    ) -> "BrainEncoder":
        """Build the encoder of a fitted model from the backbone and the features it was fit on.

        Parameters
        ----------
        backbone : Backbone
            The backbone the features were extracted with (checked against
            the features' recorded name, weights and preprocessing).
        model : EncodingModel
            Fitted on ``features``.
        features : Features, list of Features or mapping name -> Features
            The feature spaces of the fit, in the same order (their ``meta``
            gives layer, pooling, grid and reducer).
        units : None, bool array of shape (n_units,), int array or mapping, optional
            Units to predict: None for every fitted unit, a mask, indices, or
            ROIs as ``{atlas: label or [labels]}`` (e.g.
            ``{"floc-faces": ["FFA-1", "FFA-2"]}``; needs ``responses``).
        responses : Responses, optional
            The responses the model was fit on: ROI selection, and the units'
            metadata carried to :func:`~neurodec.discovery.predict_responses`.
        device : {"auto", "cpu", "cuda"} or torch.device, optional
            Where to run; defaults to the backbone's device.
        freeze : bool
            Turn off ``requires_grad`` of the backbone's parameters (gradients
            then flow to the input pixels only).

        Returns
        -------
        BrainEncoder

        Raises
        ------
        ValueError
            For an unfitted model, features that do not match the model's
            feature spaces or the backbone, an ROI without voxels, or units
            without fitted weights.
        """
        from ..encoding._inputs import as_spaces

        if not hasattr(model, "coef_") or not hasattr(model, "feature_slices_"):
            raise ValueError("The 'model' is not fitted; call EncodingModel.fit(features, responses) first.")
        spaces = as_spaces(features)
        got = [(f.name, f.n_features) for f in spaces]
        expected = [(n, s.stop - s.start) for n, s in zip(model.feature_names_, model.feature_slices_)]
        if got != expected:
            raise ValueError(
                f"The model was fit on feature spaces (name, n_features) {expected}; 'features' are {got}. "
                "Pass the features the model was fit on, in the same order."
            )
        for space in spaces:
            _check_space(space, backbone)
        backbone.check_layers([space.meta["layer"] for space in spaces])
        index = select_units(units, model, responses)
        unit_info = None
        if responses is not None:
            if responses.n_units != model.coef_.shape[1]:
                raise ValueError(
                    f"The 'responses' have {responses.n_units} units but the model predicts {model.coef_.shape[1]}."
                )
            unit_info = responses.units.iloc[index].reset_index(drop=True)
        dev = backbone.device if device is None else resolve_device(device)
        if freeze:
            backbone.root.requires_grad_(False)
        modality = "fmri" if responses is None else responses.modality
        encoder = cls(backbone, model, spaces, index, unit_info, dev, modality)
        backbone.device = dev
        return encoder

    # -------------------------------------------------------------- forward
    @property
    def n_outputs(self) -> int:
        """Number of predicted units (columns of the output)."""
        return int(self.coef.shape[1])

    @property
    def device(self) -> torch.device:
        """Where the encoder's weights live."""
        return self.coef.device

    def _apply(self, fn: Any, recurse: bool = True) -> "BrainEncoder":
        # Keep the backbone's recorded device in step when the encoder is moved.
        out = super()._apply(fn, recurse)
        self._backbone.device = self.coef.device
        return out

    def _layer_outputs(self, x: torch.Tensor) -> dict[str, Any]:
        """Run the tower, keeping the last output of every needed layer; stop after the last one."""
        layers = list(dict.fromkeys(layer for layer, *_ in self._spaces))
        captured: dict[str, Any] = {}
        calls = {"seen": 0}

        def hook_for(layer: str) -> Any:
            def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
                captured[layer] = output
                calls["seen"] += 1
                if calls["seen"] == self._calls_needed:
                    raise _StopForward

            return hook

        tower = self._tower
        handles = [
            (tower if layer == OUTPUT else tower.get_submodule(layer)).register_forward_hook(hook_for(layer))
            for layer in layers
        ]
        try:
            tower(x)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        # The first pass runs the whole model and counts the calls; later ones stop there.
        self._calls_needed = calls["seen"]
        missing = [layer for layer in layers if layer not in captured]
        if missing:
            raise ValueError(f"Layers {missing} of {self.backbone_name_!r} were not called by the model's forward pass.")
        return captured

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Standardized features, tensor of shape (n_images, n_features): the model's design rows.

        Parameters
        ----------
        images : tensor of shape (n_images, 3, height, width)
            RGB in [0, 1], any float dtype (computed in the encoder's dtype: float32
            unless converted, e.g. ``encoder.double()`` for finite-difference checks).
        """
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                "The encoder takes a tensor of images of shape (n_images, 3, height, width) with RGB values in "
                f"[0, 1]. Got {type(images).__name__} of shape {tuple(getattr(images, 'shape', ()))}."
            )
        x = self.preprocess_(images.to(self.device, self.coef.dtype))
        outputs = self._layer_outputs(x)
        parts = []
        for i, (layer, pooling, grid, reduced, has_mean, has_scale) in enumerate(self._spaces):
            rows = pool_output(outputs[layer], pooling, grid=grid, layer=layer, channels=self._channels.get(layer))
            if reduced:
                if has_mean:
                    rows = rows - getattr(self, f"proj_mean_{i}")
                rows = rows @ getattr(self, f"proj_{i}")
                if has_scale:
                    rows = rows / getattr(self, f"proj_scale_{i}")
            parts.append(rows)
        return (torch.cat(parts, dim=1) - self.feature_mean) / self.feature_scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted responses, tensor of shape (n_images, n_outputs).

        Parameters
        ----------
        images : tensor of shape (n_images, 3, height, width)
            RGB in [0, 1]; gradients flow back to them.
        """
        return self.features(images) @ self.coef + self.intercept

    def __repr__(self) -> str:
        # One line: the default repr would print every module of the backbone.
        return (
            f"BrainEncoder(backbone={self.backbone_name_!r}, model={self.model_name_!r}, n_outputs={self.n_outputs}, "
            f"preprocess={self.preprocess_!r}, device={self.device})"
        )

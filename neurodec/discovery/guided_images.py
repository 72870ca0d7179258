"""Container of brain-guided images: re-ranking by predicted activation and an image grid."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["GuidedImages"]


@dataclasses.dataclass(frozen=True)
class GuidedImages:
    """Synthesized images with the encoder's predicted objective.

    Attributes
    ----------
    images : array of shape (n_images, height, width, 3)
        Float32 pixels in [0, 1].
    scores : array of shape (n_images,)
        Predicted objective of every final image (e.g. an ROI's mean predicted
        activation), from the same encoder and objective that guided it.
    seeds : array of shape (n_images,)
        Seed of every image's start noise.
    sources : array of shape (n_images,) or None
        For image variations, the index of each one's input image.
    settings : dict
        Guidance scale, steps, scheduler, prompt, sizes: how the images were made.
    """

    images: np.ndarray
    scores: np.ndarray
    seeds: np.ndarray
    sources: np.ndarray | None
    settings: dict[str, Any]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to_uint8(self) -> np.ndarray:
        """The images as uint8, array of shape (n_images, height, width, 3)."""
        return np.round(np.clip(self.images, 0, 1) * 255).astype(np.uint8)

    def top(self, k: int | None = None) -> "GuidedImages":
        """The ``k`` images of highest predicted objective, best first (all images when None).

        Parameters
        ----------
        k : int, optional
            Images kept, 1 <= k <= len(self).

        Returns
        -------
        GuidedImages
            Sorted by descending score (ties keep their original order).
        """
        n = len(self)
        k = n if k is None else k
        if int(k) != k or not 1 <= k <= n:
            raise ValueError(f"The 'k' parameter must be an int between 1 and {n}. Got {k!r}.")
        order = np.argsort(-self.scores, kind="stable")[: int(k)]
        return dataclasses.replace(
            self, images=self.images[order], scores=self.scores[order], seeds=self.seeds[order],
            sources=None if self.sources is None else self.sources[order],
        )

    def plot_grid(self, k: int | None = None, *, ncols: int = 4, title: str | None = None, panel_inches: float = 2.0):
        """A figure of the top ``k`` images, each titled with its seed and predicted objective.

        Parameters
        ----------
        k : int, optional
            Images shown, best first (all when None).
        ncols : int
            Images per row.
        title : str, optional
            Figure title.
        panel_inches : float
            Width and height of every image panel.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from matplotlib.figure import Figure

        if int(ncols) != ncols or ncols < 1:
            raise ValueError(f"The 'ncols' parameter must be a positive int. Got {ncols!r}.")
        best = self.top(k)
        ncols = min(int(ncols), len(best))
        nrows = -(-len(best) // ncols)
        figure = Figure(figsize=(ncols * panel_inches, nrows * (panel_inches + 0.3)), layout="constrained")
        axes = figure.subplots(nrows, ncols, squeeze=False)
        for ax in axes.ravel():
            ax.set_axis_off()
        for i, ax in enumerate(axes.ravel()[: len(best)]):
            ax.imshow(best.images[i])
            ax.set_title(f"seed {int(best.seeds[i])}: {best.scores[i]:.3g}", fontsize=9)
        if title:
            figure.suptitle(title)
        return figure

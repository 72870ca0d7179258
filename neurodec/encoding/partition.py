"""Variance partitioning between two feature spaces (set-theoretic, from joint and single fits).

With held-out R^2 of a model on space A, on space B and on both (A+B)::

    unique_A = R2_AB - R2_B
    unique_B = R2_AB - R2_A
    shared   = R2_A + R2_B - R2_AB

(de Heer et al. 2017; Lescroart et al. 2015). Noise makes these estimates
noisy and can make them slightly negative; they are reported as they are.
Banded ridge offers a second view, the split R^2 of one joint fit
(``EncodingScores.split_r2``), which divides the joint R^2 into per-space
shares without a "shared" part.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from ..data.features import Features
from ..data.responses import Responses

__all__ = ["VariancePartition", "fit_variance_partition", "partition_variance"]


@dataclasses.dataclass(frozen=True)
class VariancePartition:
    """Unique and shared held-out variance of two feature spaces, per unit.

    Attributes
    ----------
    names : tuple of str
        The two spaces (A, B).
    r2_a, r2_b, r2_joint : array of shape (n_units,)
        Held-out R^2 of the model on A, on B and on both.
    unique_a, unique_b, shared : array of shape (n_units,)
    """

    names: tuple[str, str]
    r2_a: np.ndarray
    r2_b: np.ndarray
    r2_joint: np.ndarray
    unique_a: np.ndarray
    unique_b: np.ndarray
    shared: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: the three R^2 and the three partitions, columns named after the spaces."""
        a, b = self.names
        return pd.DataFrame(
            {
                f"r2:{a}": self.r2_a,
                f"r2:{b}": self.r2_b,
                "r2:joint": self.r2_joint,
                f"unique:{a}": self.unique_a,
                f"unique:{b}": self.unique_b,
                "shared": self.shared,
            }
        )


def partition_variance(
    r2_joint: np.ndarray, r2_a: np.ndarray, r2_b: np.ndarray, *, names: tuple[str, str] = ("A", "B")
) -> VariancePartition:
    """Set-theoretic variance partition from three held-out R^2 maps.

    Parameters
    ----------
    r2_joint, r2_a, r2_b : array of shape (n_units,)
        Held-out R^2 of the models on A+B, on A and on B (same test data).
    names : tuple of str
        Names of the spaces A and B.

    Returns
    -------
    VariancePartition
    """
    arrays = [np.asarray(x, dtype=np.float64) for x in (r2_joint, r2_a, r2_b)]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError(
            f"'r2_joint', 'r2_a' and 'r2_b' must be arrays of the same shape (n_units,). "
            f"Got shapes {[a.shape for a in arrays]}."
        )
    joint, a, b = arrays
    return VariancePartition(
        names=(str(names[0]), str(names[1])), r2_a=a, r2_b=b, r2_joint=joint,
        unique_a=joint - b, unique_b=joint - a, shared=a + b - joint,
    )


def fit_variance_partition(
    features_a: Features, features_b: Features, responses: Responses, **model_params: Any
) -> VariancePartition:
    """Fit encoding models on A, on B and on A+B, then partition their held-out R^2.

    Parameters
    ----------
    features_a, features_b : Features
        The two feature spaces.
    responses : Responses
        Trained on its "train" split, scored on its repeat-averaged "test" split.
    **model_params
        Parameters of every :class:`~neurodec.encoding.EncodingModel`
        (``banded=True`` fits the joint model by banded ridge, which keeps a
        weak space from diluting a strong one).

    Returns
    -------
    VariancePartition
    """
    from .model import EncodingModel

    r2 = {}
    for key, spaces in (("a", [features_a]), ("b", [features_b]), ("joint", [features_a, features_b])):
        model = EncodingModel(**model_params).fit(spaces, responses)
        r2[key] = model.score(spaces, responses).r2
    return partition_variance(r2["joint"], r2["a"], r2["b"], names=(features_a.name, features_b.name))

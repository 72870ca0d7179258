"""The dataset registry: each dataset's loaders, spec and citation, by name.

Pipelines name a dataset ("nsd", "algonauts", "bold5000") and pass the rest of
their dataset section as keyword arguments to its loaders::

    responses = load_responses("nsd", root, subject=1, roi="nsdgeneral")
    stimuli = load_stimuli("nsd", root, ids=responses.trials["stimulus_id"].unique())

Loader functions are referenced as ``"module:function"`` strings and imported
on first use, so the registry itself imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from .._registry import Registry

__all__ = ["DATASETS", "DatasetInfo", "get_dataset", "list_datasets", "load_responses", "load_stimuli"]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset.

    Parameters
    ----------
    name : str
        Registry name, also the name of its spec in ``data_specs/``.
    title : str
    modality : str
        "fmri", "meg" or "ieeg".
    responses : str
        ``"module:function"`` of the loader returning :class:`~neurodec.data.Responses`
        (called as ``f(root, subject, **kwargs)``).
    stimuli : str
        ``"module:function"`` of the loader returning :class:`~neurodec.data.Stimuli`.
    citation, url : str
    """

    name: str
    title: str
    modality: str
    responses: str
    stimuli: str
    citation: str = ""
    url: str = ""


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def _register(info: DatasetInfo) -> None:
    DATASETS.add(info.name, info)


_register(
    DatasetInfo(
        name="nsd",
        title="Natural Scenes Dataset",
        modality="fmri",
        responses="neurodec.data.nsd:load_nsd",
        stimuli="neurodec.data.nsd:load_nsd_stimuli",
        citation="Allen et al. (2022). A massive 7T fMRI dataset to bridge cognitive neuroscience and "
        "artificial intelligence. Nature Neuroscience 25, 116-126.",
        url="https://naturalscenesdataset.org",
    )
)
_register(
    DatasetInfo(
        name="algonauts",
        title="Algonauts 2023 challenge form of NSD",
        modality="fmri",
        responses="neurodec.data.algonauts:load_algonauts",
        stimuli="neurodec.data.algonauts:load_algonauts_stimuli",
        citation="Gifford et al. (2023). The Algonauts Project 2023 Challenge: How the Human Brain Makes "
        "Sense of Natural Scenes. arXiv:2301.03198.",
        url="http://algonauts.csail.mit.edu",
    )
)
_register(
    DatasetInfo(
        name="bold5000",
        title="BOLD5000",
        modality="fmri",
        responses="neurodec.data.bold5000:load_bold5000",
        stimuli="neurodec.data.bold5000:load_bold5000_stimuli",
        citation="Chang et al. (2019). BOLD5000, a public fMRI dataset while viewing 5000 visual images. "
        "Scientific Data 6, 49.",
        url="https://bold5000-dataset.github.io",
    )
)

_register(
    DatasetInfo(
        name="things-meg",
        title="THINGS-MEG",
        modality="meg",
        responses="neurodec.data.things_meg:load_things_meg",
        stimuli="neurodec.data.things_meg_stimuli:load_things_meg_stimuli",
        citation="Hebart et al. (2023). THINGS-data, a multimodal collection of large-scale datasets for "
        "investigating object representations in human brain and behavior. eLife 12, e82580.",
        url="https://openneuro.org/datasets/ds004212",
    )
)


def _resolve(target: str) -> Callable[..., Any]:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of registered datasets matching a shell-style ``pattern``."""
    return DATASETS.names(pattern)


def get_dataset(name: str) -> DatasetInfo:
    """The registered dataset ``name`` (unknown names list close matches)."""
    return DATASETS.get(name)


def load_responses(name: str, root: Any, subject: Any = 1, **kwargs: Any) -> Any:
    """Load responses of dataset ``name`` with its registered loader."""
    return _resolve(get_dataset(name).responses)(root, subject, **kwargs)


def load_stimuli(name: str, root: Any, **kwargs: Any) -> Any:
    """Load stimuli of dataset ``name`` with its registered loader."""
    return _resolve(get_dataset(name).stimuli)(root, **kwargs)

"""Pipelines: configs that wire datasets, backbones, models and outputs into studies."""

from .config import BackboneConfig, DatasetConfig, EncodingStudyConfig, config_from_dict, load_config
from .encoding import StudyResult, run_encoding_study, run_subject

__all__ = [
    "BackboneConfig",
    "DatasetConfig",
    "EncodingStudyConfig",
    "StudyResult",
    "config_from_dict",
    "load_config",
    "run_encoding_study",
    "run_subject",
]

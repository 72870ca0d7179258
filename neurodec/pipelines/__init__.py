"""Pipelines: configs that wire datasets, backbones, models and outputs into studies."""

from .checks import check_study
from .config import BackboneConfig, ConfigError, DatasetConfig, EncodingStudyConfig, config_from_dict, load_config
from .encoding import StudyError, StudyResult, run_encoding_study, run_subject

__all__ = [
    "BackboneConfig",
    "ConfigError",
    "DatasetConfig",
    "EncodingStudyConfig",
    "StudyError",
    "StudyResult",
    "check_study",
    "config_from_dict",
    "load_config",
    "run_encoding_study",
    "run_subject",
]

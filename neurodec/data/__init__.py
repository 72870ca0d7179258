"""Dataset loaders and the shared containers (responses, stimuli, features)."""

from .features import Features
from .responses import Responses, noise_ceiling_from_ncsnr
from .stimuli import ArrayImages, FileImages, HDF5Images, Stimuli

__all__ = [
    "ArrayImages",
    "Features",
    "FileImages",
    "HDF5Images",
    "Responses",
    "Stimuli",
    "noise_ceiling_from_ncsnr",
]

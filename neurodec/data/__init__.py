"""Dataset loaders and the shared containers (responses, stimuli, features)."""

from .algonauts import load_algonauts, load_algonauts_stimuli
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
    "load_algonauts",
    "load_algonauts_stimuli",
    "noise_ceiling_from_ncsnr",
]

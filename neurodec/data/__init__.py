"""Dataset loaders and the shared containers (responses, stimuli, features)."""

from .algonauts import load_algonauts, load_algonauts_stimuli
from .bold5000 import load_bold5000
from .bold5000_stimuli import load_bold5000_imagenet_labels, load_bold5000_stimuli
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
    "load_bold5000",
    "load_bold5000_imagenet_labels",
    "load_bold5000_stimuli",
    "noise_ceiling_from_ncsnr",
]

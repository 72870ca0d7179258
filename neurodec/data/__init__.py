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

# NSD (Natural Scenes Dataset)
from .nsd import NSD_BETA_VERSIONS, NSD_SPACES, load_nsd, load_nsd_stimuli  # noqa: E402
from .nsd_design import NSDDesign, load_nsd_behavior, load_nsd_design, load_nsd_stim_info  # noqa: E402
from .nsd_rois import list_nsd_rois, load_nsd_roi  # noqa: E402

__all__ += [
    "NSDDesign",
    "NSD_BETA_VERSIONS",
    "NSD_SPACES",
    "list_nsd_rois",
    "load_nsd",
    "load_nsd_behavior",
    "load_nsd_design",
    "load_nsd_roi",
    "load_nsd_stim_info",
    "load_nsd_stimuli",
]

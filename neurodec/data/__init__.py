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

# MEG (THINGS-MEG) and its simulation
from .meg_simulation import MEGSimulation, simulate_meg_epochs  # noqa: E402
from .things_meg import load_things_meg  # noqa: E402
from .things_meg_stimuli import load_things_meg_stimuli  # noqa: E402

__all__ += ["MEGSimulation", "load_things_meg", "load_things_meg_stimuli", "simulate_meg_epochs"]

"""The broken-on-purpose NSD miniature shared by the loader and check-data tests."""

from neurodec.data.fixtures.nsd import make_nsd_miniature
from neurodec.data.specs import load_spec

SPEC = load_spec("nsd")
FIELDS = dict(subject=1, space="func1pt8mm", beta_version="betas_fithrf_GLMdenoise_RR")
SURFACE = dict(subject=1, beta_version="betas_fithrf_GLMdenoise_RR")


def make_mini(root):
    """Three sessions of six trials, 3 x 4 x 2 voxels, 4 vertices per hemisphere."""
    return make_nsd_miniature(root, shape=(3, 4, 2), n_sessions=3, trials_per_session=6, n_vertices=4)

"""Package-level contracts: light import, CLI entry point, registry errors."""

import subprocess
import sys

import pytest

from neurodec._registry import Registry


HEAVY = {"torch", "timm", "diffusers", "nibabel", "mne", "transformers", "open_clip", "nilearn", "h5py",
         "sklearn", "dask", "matplotlib"}


@pytest.mark.parametrize(
    "statement",
    [
        "import neurodec",
        "import neurodec.ridge",
        "import neurodec.encoding, neurodec.viz; neurodec.encoding.pearson_r; neurodec.encoding.summarize_rois;"
        " neurodec.viz.bids_filename",
        "import neurodec.backbones as b; b.list_backbones(); b.get_backbone_spec('timm/resnet50')",
        "import neurodec.discovery; neurodec.discovery.MDSResult; neurodec.discovery.most_discriminative_stimuli;"
        " neurodec.discovery.brain_guided_images; neurodec.discovery.GuidedImages; neurodec.discovery.load_diffusion_pipeline",
        "import neurodec.discovery as d; d.PrefixCaptioner; d.project_to_image_embeddings; d.lavca_captions;"
        " d.score_captions; d.load_prefix_captioner; d.brainscuba_captions",
        "import neurodec.metrics as m; m.retrieval_top_k; m.two_way_identification; m.caption_scores; m.FEATURE_METRICS",
        "import neurodec.decoding",
        "import neurodec.decoding as dec; dec.reconstruct_images; dec.Reconstructions; dec.load_reconstruction_pipeline",
    ],
    ids=["neurodec", "ridge", "encoding-viz", "backbone-registry", "discovery", "voxel-captions", "metrics", "decoding",
         "reconstruction"],
)
def test_imports_stay_light(statement):
    # Heavy libraries load on first real use, never on import or registry queries.
    code = f"import sys; {statement}; print(sorted(set({sorted(HEAVY)!r}) & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "neurodec.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "version" in out.stdout


def test_registry_unknown_name_lists_close_matches():
    reg: Registry[int] = Registry("backbone")
    reg.add("resnet50", 1)
    reg.add("resnet18", 2)
    with pytest.raises(ValueError, match="Close matches: resnet50"):
        reg.get("resnet5O")
    with pytest.raises(ValueError, match="already registered"):
        reg.add("resnet50", 3)
    assert reg.names("resnet*") == ["resnet18", "resnet50"]


def test_every_listed_subpackage_exists():
    import importlib

    import neurodec

    for name in neurodec.__all__:
        if name != "__version__":
            assert importlib.import_module(f"neurodec.{name}") is getattr(neurodec, name)
    with pytest.raises(AttributeError, match="no attribute 'nets'"):
        neurodec.nets


def test_shared_parameter_docs_are_filled():
    from neurodec._docs import docdict
    from neurodec.decoding import LinearDecoder
    from neurodec.discovery import (
        PrefixCaptioner, brainscuba_captions, load_prefix_captioner, most_discriminative_stimuli,
        project_to_image_embeddings,
    )
    from neurodec.encoding import EncodingModel
    from neurodec.ridge import BandedRidgeCV, RidgeCV
    from neurodec.ridge.solvers import solve_ridge_cv

    for obj in (EncodingModel, RidgeCV, BandedRidgeCV, solve_ridge_cv, most_discriminative_stimuli, PrefixCaptioner,
                brainscuba_captions, load_prefix_captioner, project_to_image_embeddings, LinearDecoder):
        assert "%(" not in obj.__doc__, obj
        assert docdict["device"] in obj.__doc__, obj

"""The encoding API on what load_nsd returns: a miniature NSD in its real on-disk layout."""

import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurodec.data import Features
from neurodec.encoding import EncodingModel, write_encoding_outputs


@pytest.mark.parametrize("space", ["func1pt8mm", "fsaverage"])
def test_fit_score_and_write_maps_from_load_nsd(tmp_path, rng, space):
    from neurodec.data.fixtures.nsd import make_nsd_miniature
    from neurodec.data.nsd import load_nsd

    mini = make_nsd_miniature(tmp_path / "nsd", n_sessions=3, trials_per_session=15, surface=space == "fsaverage")
    responses = load_nsd(mini.root, 1, space=space, verbose=False)
    ids = np.unique(responses.stimulus_ids)
    features = Features(rng.standard_normal((len(ids), 6)), ids, name="random/layer")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random betas: alphas at the grid edge
        model = EncodingModel(alphas=[1.0, 100.0], cv=2, device="cpu").fit(features, responses)
        scores = model.score(features, responses)
    assert scores.subject == "subj01" and scores.n_test == len(np.unique(responses.split("test").stimulus_ids))
    expected_nc = responses.average_repeats().noise_ceiling()  # NSD formula with the test repeat counts
    np.testing.assert_allclose(scores.noise_ceiling, expected_nc)
    atlas = "prf-visualrois" if f"roi:prf-visualrois" in responses.units else None
    written = write_encoding_outputs(scores, tmp_path / "out", atlas=atlas, figures=False, metrics=("r",))
    assert written["maps"] and all(p.parts[-4:-2] == ("neurodec", "sub-01") for p in written["maps"])
    if space == "fsaverage":
        lh = next(p for p in written["maps"] if "hemi-L" in p.name)
        data = nib.load(lh).get_fdata()[:, 0, 0]
        units = responses.units
        rows = (units["hemi"] == "lh").to_numpy()
        np.testing.assert_allclose(data[units["vertex"][rows]], scores.r[rows], rtol=1e-6, equal_nan=True)
    else:
        image = nib.load(written["maps"][0])
        np.testing.assert_allclose(image.affine, responses.info["affine"])
        assert image.shape == tuple(responses.info["volume_shape"])
        u = responses.units
        np.testing.assert_allclose(image.get_fdata()[u.i, u.j, u.k], scores.r, rtol=1e-6, equal_nan=True)
    if atlas:
        rois = pd.read_csv(next(p for p in written["tables"] if "_rois" in p.name))
        labelled = set(responses.units[f"roi:{atlas}"]) - {"", "Unknown"}
        assert set(rois["roi"]) == labelled

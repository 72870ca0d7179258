"""Feature cache: bit-identical reuse, resume after an interruption, refusal of other configurations."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from neurodec.backbones import FeatureCache, extract_features, load

LAYERS = ["stages.1", "stages.3"]
KEY_FIELDS = ("backbone", "weights", "pooling", "preprocessing", "precision", "stimuli", "layer", "reduction")


class _Interrupt(RuntimeError):
    pass


def _count_forwards(backbone, *, fail_at=None):
    calls = []

    def hook(module, inputs):
        calls.append(len(inputs[0]))
        if fail_at is not None and len(calls) == fail_at:
            raise _Interrupt("simulated crash")

    # A pre-hook: extraction stops the forward pass after its last layer, so
    # the model's own forward hook would not fire.
    return calls, backbone.model.register_forward_pre_hook(hook)


def _key(features):
    return {k: features.meta[k] for k in KEY_FIELDS}


def test_cached_features_are_bit_identical_and_reused(atto, stimuli, tmp_path):
    fresh = extract_features(atto, stimuli, layers=LAYERS, batch_size=4, verbose=False)
    first = extract_features(atto, stimuli, layers=LAYERS, batch_size=4, cache=tmp_path, verbose=False)
    calls, handle = _count_forwards(atto)
    try:
        again = extract_features(atto, stimuli, layers=LAYERS, batch_size=4, cache=FeatureCache(tmp_path), verbose=False)
    finally:
        handle.remove()
    assert calls == []
    for layer in LAYERS:
        assert isinstance(again[layer].data, h5py.Dataset)
        assert np.array_equal(first[layer].data[()], fresh[layer].data)
        assert np.array_equal(again[layer].data[()], fresh[layer].data)
        path = FeatureCache(tmp_path).path_for(_key(again[layer]))
        with h5py.File(path, "r") as handle:
            assert handle.attrs["key.layer"] == layer and handle.attrs["done_rows"] == len(stimuli)
            assert [s.decode() for s in handle["stimulus_ids"][()]] == stimuli.ids


def test_interrupted_extraction_resumes_bit_identically(atto, stimuli, tmp_path):
    reference = extract_features(atto, stimuli, layers=LAYERS, batch_size=3, verbose=False)
    calls, handle = _count_forwards(atto, fail_at=3)
    try:
        with pytest.raises(_Interrupt):
            extract_features(atto, stimuli, layers=LAYERS, batch_size=3, cache=tmp_path, verbose=False)
    finally:
        handle.remove()
    partials = sorted(tmp_path.rglob("*.partial"))
    assert len(partials) == 2 and not list(tmp_path.rglob("*.h5"))
    for path in partials:
        with h5py.File(path, "r") as h5:
            assert h5.attrs["done_rows"] == 6  # two finished batches of 3
    calls, handle = _count_forwards(atto)
    try:
        resumed = extract_features(atto, stimuli, layers=LAYERS, batch_size=3, cache=tmp_path, verbose=False)
    finally:
        handle.remove()
    assert calls == [3, 1]  # only the rows that were missing
    assert not list(tmp_path.rglob("*.partial"))
    for layer in LAYERS:
        assert np.array_equal(resumed[layer].data[()], reference[layer].data)


def test_cache_from_another_configuration_is_refused(atto, stimuli, tmp_path):
    cache = FeatureCache(tmp_path)
    ours = extract_features(atto, stimuli, layers="stages.1", cache=cache, verbose=False)["stages.1"]
    other = load("timm/convnext_atto", weights="random", device="cpu", random_state=7)
    other_key = {**_key(ours), "weights": other.weights}
    ours.data.file.close()
    shutil.copy(cache.path_for(_key(ours)), cache.path_for(other_key))  # e.g. a file copied by hand
    with pytest.raises(ValueError, match="another configuration: key 'weights' is 'random:seed=0' in the file "
                                         "but 'random:seed=7' is requested"):
        extract_features(other, stimuli, layers="stages.1", cache=cache, verbose=False)


def test_cache_from_another_neurodec_version_is_reused_with_a_warning(atto, stimuli, tmp_path):
    import neurodec

    cache = FeatureCache(tmp_path)
    ours = extract_features(atto, stimuli, layers="stages.1", cache=cache, verbose=False)["stages.1"]
    path = cache.path_for(_key(ours))
    expected = ours.data[()]
    ours.data.file.close()
    with h5py.File(path, "a") as handle:
        assert handle.attrs["neurodec_version"] == neurodec.__version__
        handle.attrs["neurodec_version"] = "0.0.1"
    with pytest.warns(UserWarning, match=r"was written by neurodec 0\.0\.1; this is neurodec .*delete it to recompute"):
        again = extract_features(atto, stimuli, layers="stages.1", cache=cache, verbose=False)["stages.1"]
    assert np.array_equal(again.data[()], expected)
    again.data.file.close()


def test_cache_validates_shape_and_ids(atto, stimuli, tmp_path):
    cache = FeatureCache(tmp_path)
    feats = extract_features(atto, stimuli, layers="stages.1", cache=cache, verbose=False)["stages.1"]
    path = cache.path_for(_key(feats))
    feats.data.file.close()
    with h5py.File(path, "a") as handle:
        del handle["features"]
        handle["features"] = np.zeros((len(stimuli), 4), np.float64)
    with pytest.raises(ValueError, match=r"expected float32 features with 10 rows; got \(\(10, 4\), 'float64'\)"):
        extract_features(atto, stimuli, layers="stages.1", cache=cache, verbose=False)


def test_reduced_features_are_cached_with_their_reducer(atto, stimuli, tmp_path):
    kwargs = dict(layers="stages.2", reduction="pca", n_components=3, fit_ids=stimuli.ids[:7], cache=tmp_path, verbose=False)
    first = extract_features(atto, stimuli, **kwargs)["stages.2"]
    calls, handle = _count_forwards(atto)
    try:
        again = extract_features(atto, stimuli, **kwargs)["stages.2"]
    finally:
        handle.remove()
    assert calls == [] and again.data.shape == (10, 3)
    assert np.array_equal(again.data[()], first.data[()])
    np.testing.assert_array_equal(again.meta["reducer"].components_, first.meta["reducer"].components_)
    other_fit = extract_features(atto, stimuli, **{**kwargs, "fit_ids": stimuli.ids[:5]})["stages.2"]
    assert other_fit.meta["reduction"] != first.meta["reduction"]

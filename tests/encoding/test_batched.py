"""Column-block reading and scoring: the same numbers as whole-array processing, from memory-mapped responses too."""

import dataclasses

import numpy as np
import pytest

from encoding_simulation import simulate
from float32_tolerance import float32_atol, float32_rtol
from neurodec.encoding import EncodingModel
from neurodec.encoding._split_reader import SplitReader

ALPHAS = np.logspace(-1, 6, 8)
# Batched and whole fits differ only in float32 summation order (other BLAS kernels and
# blocks): errors of sums over the 120 training samples (weights) and over the
# 40 test stimuli and 10-20 features (scores), all terms of order 1 (standardized data).
N_TERMS = 120 + 40 + 20
RTOL, ATOL = float32_rtol(N_TERMS), float32_atol(N_TERMS)


@pytest.fixture(scope="module")
def planted():
    features, responses, _ = simulate(np.random.default_rng(3), n_per_area=10)
    return features, responses


def _memmapped(responses, tmp_path):
    path = tmp_path / "responses.npy"
    np.save(path, responses.data)
    return dataclasses.replace(responses, data=np.load(path, mmap_mode="r"))


@pytest.mark.parametrize("split", ["train", "test"])
def test_split_reader_equals_split_then_average_bit_for_bit(planted, tmp_path, split):
    _, responses = planted
    expected = responses.split(split).average_repeats()
    for source in (responses, _memmapped(responses, tmp_path)):
        reader = SplitReader(source, split, average=True)
        assert reader.shape == expected.shape and reader.dtype == expected.data.dtype
        np.testing.assert_array_equal(reader.stimulus_ids, expected.stimulus_ids)
        np.testing.assert_array_equal(reader.trials["n_repeats"], expected.trials["n_repeats"])
        blocks = np.hstack([reader[:, cols] for cols in reader.column_blocks(7)])
        np.testing.assert_array_equal(blocks, expected.data)
        units = np.flatnonzero(np.arange(responses.n_units) % 3 != 1)
        np.testing.assert_array_equal(reader.subset(units)[:, 2:9], expected.data[:, units[2:9]])
        step = expected.data.size // 50
        np.testing.assert_array_equal(reader.strided_sample(50, block=5), expected.data.reshape(-1)[::step])
    single = SplitReader(responses, split, average=False)
    np.testing.assert_array_equal(single[:, 0:responses.n_units], responses.split(split).data)
    with pytest.raises(IndexError, match=r"read as Y\[:, start:stop\]"):
        single[0]
    with pytest.raises(ValueError, match="No trial belongs to split 'val'"):
        SplitReader(responses, "val", average=True)


def test_batched_scoring_equals_unbatched(planted):
    features, responses = planted
    # Without the ncsnr column the noise ceiling is estimated from the test repeats, block by block.
    no_ncsnr = dataclasses.replace(responses, units=responses.units.drop(columns="ncsnr"))
    spaces = [features["A"], features["B"]]
    for banded in (False, True):
        whole = EncodingModel(alphas=ALPHAS, device="cpu", random_state=0, banded=banded, n_iter=5,
                              warn_alpha_edge=False).fit(spaces, no_ncsnr)
        batched = EncodingModel(alphas=ALPHAS, device="cpu", random_state=0, banded=banded, n_iter=5,
                                n_targets_batch=7, warn_alpha_edge=False).fit(spaces, no_ncsnr)
        np.testing.assert_allclose(batched.coef_, whole.coef_, rtol=RTOL, atol=ATOL)
        assert batched.fingerprint_ == whole.fingerprint_
        a = whole.score(spaces, no_ncsnr, n_permutations=49, random_state=5)
        b = batched.score(spaces, no_ncsnr, n_permutations=49, random_state=5)
        for name in ("r", "r2", "noise_ceiling"):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=RTOL, atol=ATOL, err_msg=name)
        # A permuted score within rounding error of the observed one may count on one side or
        # the other: p-values may differ by one permutation's share.
        np.testing.assert_allclose(b.p_values, a.p_values, atol=1 / 50 + ATOL)
        assert np.isfinite(a.noise_ceiling).all() and a.n_test == b.n_test == 40
        if banded:
            np.testing.assert_allclose(b.split_r2, a.split_r2, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("storage", ["memmap", "hdf5"])
def test_fit_and_score_from_memory_mapped_responses(planted, tmp_path, storage):
    import h5py

    features, responses = planted
    data = np.array(responses.data)
    data[:, 4] = np.nan  # an excluded unit inside a block
    data[responses.trials["split"].to_numpy() == "test", 6] = np.inf  # a unit whose test responses are not finite
    if storage == "memmap":
        np.save(tmp_path / "responses.npy", data)
        stored = np.load(tmp_path / "responses.npy", mmap_mode="r")
    else:
        with h5py.File(tmp_path / "responses.h5", "w") as handle:
            handle.create_dataset("data", data=data, chunks=(16, 8))
        stored = h5py.File(tmp_path / "responses.h5", "r")["data"]
    mapped = dataclasses.replace(responses, data=stored)
    in_memory = dataclasses.replace(responses, data=data)
    with pytest.warns(UserWarning, match="excludes 1 of"):
        a = EncodingModel(alphas=ALPHAS, device="cpu", random_state=0, warn_alpha_edge=False).fit(features["A"], in_memory)
    batched = EncodingModel(alphas=ALPHAS, device="cpu", random_state=0, n_targets_batch=5, warn_alpha_edge=False)
    with pytest.warns(UserWarning, match="excludes 1 of"):
        b = batched.fit(features["A"], mapped)
    np.testing.assert_allclose(b.coef_, a.coef_, rtol=RTOL, atol=ATOL)
    with pytest.warns(UserWarning, match="1 units have NaN/inf test responses"):
        scores = b.score(features["A"], mapped)
    assert np.isnan(scores.r[[4, 6]]).all() and np.isfinite(np.delete(scores.r, [4, 6])).all()
    np.testing.assert_allclose(scores.r, a.score(features["A"], in_memory).r, rtol=RTOL, atol=ATOL, equal_nan=True)

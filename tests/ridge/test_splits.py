"""BlockedKFold: contiguous validation blocks with a training gap around each."""

import numpy as np
import pytest
from sklearn.model_selection import KFold

from neurodec.ridge import BlockedKFold


def test_gap_zero_equals_kfold():
    for (tr, va), (ktr, kva) in zip(BlockedKFold(4).split(np.zeros(23)), KFold(4).split(np.zeros(23))):
        np.testing.assert_array_equal(tr, ktr)
        np.testing.assert_array_equal(va, kva)


def test_gap_is_excluded_from_training():
    n, gap = 50, 4
    splits = list(BlockedKFold(5, gap=gap).split(np.zeros((n, 2))))
    assert len(splits) == 5
    covered = np.concatenate([va for _, va in splits])
    np.testing.assert_array_equal(np.sort(covered), np.arange(n))
    for tr, va in splits:
        assert np.all(np.diff(va) == 1)
        distance = np.abs(tr[:, None] - va[None, :]).min(1)
        assert distance.min() == gap + 1
        assert len(tr) == n - len(va) - min(gap, va[0]) - min(gap, n - 1 - va[-1])


def test_invalid_parameters():
    with pytest.raises(ValueError, match="'gap' parameter of BlockedKFold"):
        BlockedKFold(3, gap=-1)
    with pytest.raises(ValueError, match="'n_splits' parameter"):
        BlockedKFold(1)
    with pytest.raises(ValueError, match="leaves no training sample"):
        list(BlockedKFold(2, gap=10).split(np.zeros(10)))

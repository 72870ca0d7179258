"""The same encoding results on CUDA as on the CPU."""

import numpy as np
import pytest

from encoding_simulation import simulate
from neurodec.encoding import EncodingModel, permutation_test


@pytest.mark.gpu
def test_model_and_permutations_agree_between_cpu_and_cuda(rng):
    features, responses, _ = simulate(rng)
    scores = {}
    for device in ("cpu", "cuda"):
        model = EncodingModel(alphas=np.logspace(-1, 6, 8), device=device, random_state=0)
        model.fit([features["A"], features["B"]], responses)
        scores[device] = model.score([features["A"], features["B"]], responses, n_permutations=50, random_state=0)
    np.testing.assert_allclose(scores["cuda"].r, scores["cpu"].r, atol=1e-4)
    np.testing.assert_allclose(scores["cuda"].r2, scores["cpu"].r2, atol=1e-4)
    y, p = rng.standard_normal((30, 50)), rng.standard_normal((30, 50))
    cpu = permutation_test(y, p, n_permutations=99, random_state=3, device="cpu")
    cuda = permutation_test(y, p, n_permutations=99, random_state=3, device="cuda")
    np.testing.assert_array_equal(cuda.p_values, cpu.p_values)

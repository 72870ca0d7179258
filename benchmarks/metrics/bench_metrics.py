"""Time per decoding metric on CPU for N image pairs, beside the reference implementations.

neurodec.metrics against the loops the reference evaluation (MindEye) runs:
PixCorr vs ``np.corrcoef`` per image, SSIM vs scikit-image's
``structural_similarity`` per image (both after the same torchvision resize),
two-way identification vs ``np.corrcoef`` of the stacked feature matrices,
retrieval vs torch ``topk`` over the draws. The feature metric (AlexNet layer
2, random weights: the same compute as pretrained) is timed alone on fewer
pairs. Scores must agree; the script asserts it.

Run: ``python benchmarks/metrics/bench_metrics.py [--pairs 1000] [--feature-pairs 100]``.
Writes ``benchmarks/metrics/results_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--feature-pairs", type=int, default=100)
    args = parser.parse_args()

    import torch
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    from neurodec._torchvision import enable_torchvision
    from neurodec.metrics import feature_metric, pixcorr, retrieval_top_k, ssim, two_way_identification

    tv = enable_torchvision()
    rng = np.random.default_rng(0)
    n = args.pairs
    # NSD-sized ground truths (425 px) and 512 px reconstructions, uint8, smooth enough to have structure.
    true = np.kron(rng.integers(0, 256, (n, 25, 25, 3), dtype=np.uint8), np.ones((1, 17, 17, 1), np.uint8))
    pred = np.kron(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.ones((1, 16, 16, 1), np.uint8))
    results: dict[str, dict[str, float]] = {}

    def reference_resized(images):
        for start in range(0, n, 16):
            batch = torch.from_numpy(images[start:start + 16]).permute(0, 3, 1, 2).float() / 255
            yield tv.transforms.functional.resize(batch, 425, tv.transforms.InterpolationMode.BILINEAR,
                                                  antialias=True).double().numpy()

    def reference_pixcorr():
        return np.array([np.corrcoef(p.ravel(), t.ravel())[0, 1] for pb, tb in
                         zip(reference_resized(pred), reference_resized(true)) for p, t in zip(pb, tb)])

    def reference_ssim():
        return np.array([
            structural_similarity(rgb2gray(p.transpose(1, 2, 0)), rgb2gray(t.transpose(1, 2, 0)), gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False, data_range=1.0)
            for pb, tb in zip(reference_resized(pred), reference_resized(true)) for p, t in zip(pb, tb)
        ])

    for name, ours, ref in (("pixcorr", lambda: pixcorr(pred, true), reference_pixcorr),
                            ("ssim", lambda: ssim(pred, true), reference_ssim)):
        res, t_ours = _timed(ours)
        ref_values, t_ref = _timed(ref)
        np.testing.assert_allclose(res.per_image, ref_values, atol=1e-6)
        results[name] = {"neurodec_s": t_ours, "reference_s": t_ref, "speedup": t_ref / t_ours, "mean": res.mean}

    feats_true = rng.standard_normal((n, 2048)).astype(np.float32)  # Inception avgpool size
    feats_pred = feats_true + 2 * rng.standard_normal((n, 2048)).astype(np.float32)

    def reference_two_way():
        r = np.corrcoef(feats_true, feats_pred)[:n, n:]
        return np.sum(r < np.diag(r), 0) / (n - 1)

    res, t_ours = _timed(lambda: two_way_identification(feats_pred, feats_true))
    ref_values, t_ref = _timed(reference_two_way)
    np.testing.assert_allclose(res.per_image, ref_values, atol=1e-12)
    results["two_way_identification"] = {"neurodec_s": t_ours, "reference_s": t_ref, "speedup": t_ref / t_ours,
                                         "mean": res.mean}

    emb_true = rng.standard_normal((n, 768))
    emb_pred = emb_true + 4 * rng.standard_normal((n, 768))

    def reference_retrieval():
        draws = np.random.default_rng(0)
        fwd = 0.0
        for _ in range(30):
            idx = draws.choice(n, size=300, replace=False)
            a = torch.nn.functional.normalize(torch.from_numpy(emb_pred[idx]), dim=-1)
            b = torch.nn.functional.normalize(torch.from_numpy(emb_true[idx]), dim=-1)
            fwd += (torch.topk(a @ b.T, 1)[1][:, 0] == torch.arange(300)).float().mean().item()
        return fwd / 30

    res, t_ours = _timed(lambda: retrieval_top_k(emb_pred, emb_true, random_state=0))
    ref_value, t_ref = _timed(reference_retrieval)
    assert abs(res.image_retrieval - ref_value) < 1e-12
    results["retrieval_top_k"] = {"neurodec_s": t_ours, "reference_s": t_ref, "speedup": t_ref / t_ours,
                                  "mean": res.image_retrieval}

    m = args.feature_pairs
    res, t_ours = _timed(lambda: feature_metric(pred[:m], true[:m], "alexnet2", weights="random", device="cpu"))
    results["alexnet2_feature_metric"] = {"neurodec_s": t_ours, "pairs": m, "mean": res.mean}

    results["setting"] = {"pairs": n, "torch_threads": torch.get_num_threads()}
    out = Path(__file__).with_name("results_cpu.json")
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

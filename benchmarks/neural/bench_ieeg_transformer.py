"""iEEG transformer: training throughput (samples/s) of masked latent pretraining, per token scale.

Setting: 64 sEEG channels on 8 shafts (8 regions, 2 lobes), epochs of 1 s at
256 Hz cut into 8 patches of 32 samples, d_model 64, 2 layers, 4 heads,
mask ratio 0.5, batch 32, float32. One training sample is one epoch; the
pretraining step is a student forward + backward, a teacher forward and the
EMA update (through ``fit_network``). Inference throughput is ``embed`` in
batches of 32 without gradients. Channel-level tokens are 64 x 8 = 512 per
epoch, region-level 64, lobe-level 16: attention cost falls with the scale.

With ``--probe`` it measures accuracy instead: on the test simulation (16
channels in 4 regions, 0.5 s at 128 Hz, 160 trials split in half, speech raising
high gamma by ``--effect`` background standard deviations at 350 ms in 8
channels), a region-level encoder pretrained 8 epochs, then the frozen and the
fine-tuned probe's test ROC-AUC beside the linear baseline's, for 3 seeds.

Run: ``python benchmarks/neural/bench_ieeg_transformer.py [--device cpu|cuda] [--n-epochs 2] [--probe]``;
writes ``benchmarks/neural/results_ieeg_transformer_<device>.json`` (``results_ieeg_probe_<device>.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from neurodec.neural import IEEGTransformer, pretrain_masked_latent, seed_everything

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "neural"))
from _ieeg_sim import simulate_speech_music  # noqa: E402


def _layout_units(responses, n_shafts: int):
    # Relabel the simulation's channels onto n_shafts shafts: one region per shaft, lobes by hemisphere.
    units = responses.units.copy()
    shaft = np.arange(len(units)) * n_shafts // len(units)
    units["region"] = [f"shaft{s}" for s in shaft]
    units["lobe"] = np.where(shaft < n_shafts // 2, "left", "right")
    units["x"] = np.where(shaft < n_shafts // 2, -40.0, 40.0) + 3.5 * (np.arange(len(units)) % 8)
    units["y"] = -60.0 + 15.0 * shaft
    responses.units = units
    return responses


def probe(device: str, effect: float) -> None:
    from neurodec.neural import evaluate_ieeg_probe

    rows = []
    for seed in range(3):
        responses = simulate_speech_music(np.random.default_rng(seed), n_trials=160, effect=effect * 0.3,
                                          test_fraction=0.5, responsive=(0, 1, 4, 5, 8, 9, 12, 13))
        seed_everything(seed)
        encoder = IEEGTransformer.from_responses(responses, "region", patch_len=16, d_model=32, n_heads=4,
                                                 n_layers=1, dropout=0.0)
        train, test = responses.train_test_split()
        fit = pretrain_masked_latent(encoder, train, val_data=test, n_epochs=8, batch_size=10, lr=2e-3,
                                     random_state=seed, device=device, verbose=False)
        row = {"seed": seed, "val_loss_first_last": [float(fit.val_loss[0]), float(fit.val_loss[-1])]}
        for finetune in (False, True):
            result = evaluate_ieeg_probe(encoder, responses, "condition", positive="speech", finetune=finetune,
                                         n_epochs=10, batch_size=10, random_state=seed, device=device, verbose=False)
            key = "finetuned" if finetune else "frozen"
            row[key], row["baseline"], row["chance_sd"] = result.roc_auc, result.baseline_roc_auc, result.chance_sd
        rows.append(row)
        print(row)
    out = Path(__file__).with_name(f"results_ieeg_probe_{device}.json")
    out.write_text(json.dumps({"effect_sd": effect, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-epochs", type=int, default=2)
    parser.add_argument("--n-trials", type=int, default=128)
    parser.add_argument("--probe", action="store_true", help="measure probe and baseline ROC-AUC instead")
    parser.add_argument("--effect", type=float, default=1.0, help="speech effect in background sds (--probe)")
    args = parser.parse_args()
    if args.probe:
        probe(args.device, args.effect)
        return
    seed_everything(0)
    responses = simulate_speech_music(np.random.default_rng(0), n_trials=args.n_trials, n_channels=64, n_times=256,
                                      sfreq=256.0, responsive=tuple(range(0, 64, 4)))
    responses = _layout_units(responses, n_shafts=8)
    x = torch.as_tensor(responses.data)
    results = {"setting": "64 channels, 256 samples (8 patches of 32), d_model 64, 2 layers, batch 32, float32",
               "device": args.device, "torch_threads": torch.get_num_threads(), "scales": {}}
    for scale in ("channel", "region", "lobe"):
        seed_everything(0)
        encoder = IEEGTransformer.from_responses(responses, scale, patch_len=32, d_model=64, n_layers=2, n_heads=4)
        fit = pretrain_masked_latent(encoder, x, n_epochs=args.n_epochs, batch_size=32, device=args.device,
                                     verbose=False)
        encoder.eval()
        with torch.no_grad():
            encoder.embed(x[:32].to(args.device))  # warm-up
            tic = time.perf_counter()
            for batch in x.split(32):
                encoder.embed(batch.to(args.device))
            infer = len(x) / (time.perf_counter() - tic)
        tokens = encoder.layout.n_groups * encoder.n_patches(x.shape[2])
        results["scales"][scale] = {"tokens_per_epoch": tokens, "train_samples_per_s": fit.samples_per_second,
                                    "embed_samples_per_s": infer}
        print(f"{scale:8s} tokens {tokens:4d}  pretraining {fit.samples_per_second:8.1f} samples/s  "
              f"embedding {infer:8.1f} samples/s")
    out = Path(__file__).with_name(f"results_ieeg_transformer_{args.device}.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

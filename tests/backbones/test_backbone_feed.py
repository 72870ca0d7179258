"""Feeding the forward pass: DataLoader workers, pinned batches, bf16 autocast checked against float32."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from neurodec.backbones import extract_features

LAYERS = ["stages.1", "stages.3"]
EARLY = ["stages.0", "stages.1"]  # bf16 on CPU is slow: the forward stops after stage 1


def test_dataloader_workers_give_the_in_process_features(atto, stimuli):
    base = extract_features(atto, stimuli, layers=LAYERS, batch_size=4, verbose=False)
    workers = extract_features(atto, stimuli, layers=LAYERS, batch_size=4, num_workers=2, verbose=False)
    for layer in LAYERS:
        # same preprocessing code, same model, same batches: bitwise equal
        np.testing.assert_array_equal(workers[layer].data, base[layer].data)


def test_bf16_autocast_stays_within_its_tolerance_and_records_the_error(atto, stimuli):
    stimuli = stimuli.subset(stimuli.ids[:6])  # two batches: the check runs on the first only
    fp32 = extract_features(atto, stimuli, layers=EARLY, batch_size=4, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within amp_rtol: no warning
        bf16 = extract_features(atto, stimuli, layers=EARLY, batch_size=4, amp="bf16", verbose=False)
    for layer in EARLY:
        assert bf16[layer].meta["precision"] == "bfloat16"
        first = slice(0, 4)
        ref = fp32[layer].data[first]
        measured = np.linalg.norm(bf16[layer].data[first] - ref) / np.linalg.norm(ref)
        # the recorded error is the one of the first batch, against the float32 forward of that batch
        np.testing.assert_allclose(bf16[layer].meta["amp_relative_error"], measured, rtol=1e-3)
        # bf16 really ran (not a silent float32 run), and stayed within the default amp_rtol
        assert 2.0**-12 < measured < 0.05
        rel_all = np.linalg.norm(bf16[layer].data - fp32[layer].data) / np.linalg.norm(fp32[layer].data)
        assert rel_all < 0.05


def test_bf16_check_warns_when_the_tolerance_is_too_tight(atto, stimuli):
    error = r"\d\.\d\de-0\d"
    expected = rf"beyond amp_rtol=1e-06 \(relative error 'stages.0': {error}, 'stages.1': {error}\)"
    with pytest.warns(UserWarning, match=expected):
        extract_features(atto, stimuli.subset(stimuli.ids[:2]), layers=EARLY, batch_size=2, amp="bf16",
                         amp_rtol=1e-6, verbose=False)


def test_bad_feed_arguments(atto, stimuli):
    with pytest.raises(ValueError, match="'num_workers' parameter must be a non-negative integer. Got -1"):
        extract_features(atto, stimuli, num_workers=-1, verbose=False)
    with pytest.raises(ValueError, match="'amp_rtol' parameter must be a positive number. Got 0"):
        extract_features(atto, stimuli, amp="bf16", amp_rtol=0, verbose=False)
    with pytest.raises(ValueError, match="'amp' parameter must be 'auto', True, False or 'bf16'. Got 'fp8'"):
        extract_features(atto, stimuli, amp="fp8", verbose=False)


@pytest.mark.gpu
def test_pinned_non_blocking_feed_on_cuda_matches_cpu(stimuli):
    from neurodec.backbones import load

    cpu = load("timm/convnext_atto", weights="random", device="cpu")
    cuda = load("timm/convnext_atto", weights="random", device="cuda")
    cuda.root.load_state_dict(cpu.root.state_dict())
    ref = extract_features(cpu, stimuli, layers=LAYERS, batch_size=4, verbose=False)
    out = extract_features(cuda, stimuli, layers=LAYERS, batch_size=4, amp=False, num_workers=2, verbose=False)
    for layer in LAYERS:
        np.testing.assert_allclose(out[layer].data, ref[layer].data, rtol=1e-3, atol=1e-4)
    assert torch.cuda.is_available()

"""fit_network: exact resume, early stopping, checkpoints and logs, precision, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neurodec.neural import fit_network, resolve_precision, seed_everything
from neurodec.neural.training import BEST, LAST, METRICS


def _problem(n: int = 96):
    g = torch.Generator().manual_seed(1)
    X = torch.randn(n, 8, generator=g)
    w = torch.randn(8, 2, generator=g)
    return X, X @ w + 0.1 * torch.randn(n, 2, generator=g), w


def _model() -> torch.nn.Module:
    # Dropout makes the result depend on the torch RNG, which resume must restore.
    seed_everything(3)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.2), torch.nn.Linear(16, 2))


def _mse(model, batch):
    pred = model(batch[0])
    return {"loss": torch.nn.functional.mse_loss(pred, batch[1]), "abs": (pred - batch[1]).abs().mean()}


def _fit(model, folder, loss_fn=_mse, **kw):
    X, Y, _ = _problem()
    kw = {"val_data": (X[64:], Y[64:]), "n_epochs": 5, "batch_size": 16, "lr": 1e-2, "device": "cpu",
          "scheduler": lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5), **kw}
    return fit_network(model, (X[:64], Y[:64]), loss_fn, checkpoint_dir=folder, **kw)


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path):
    straight = _fit(_model(), tmp_path / "a")
    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 6 * 2 + 2:  # epoch 2 (4 train + 2 validation batches per epoch), batch 2
            raise KeyboardInterrupt
        return _mse(model, batch)

    with pytest.raises(KeyboardInterrupt):
        _fit(_model(), tmp_path / "b", loss_fn=crashing)
    partial = [json.loads(line) for line in (tmp_path / "b" / METRICS).read_text().splitlines()]
    assert len(partial) == 2  # epochs 0 and 1 were checkpointed
    resumed = _fit(_model(), tmp_path / "b", resume=True)
    # Same batches, same dropout masks, same optimizer and scheduler state: bitwise equal on CPU.
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    last_a = torch.load(tmp_path / "a" / LAST, weights_only=False)["model"]
    last_b = torch.load(tmp_path / "b" / LAST, weights_only=False)["model"]
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)
    keys = ("train_loss", "train_abs", "val_loss", "lr")
    assert [[r[k] for k in keys] for r in straight.history] == [[r[k] for k in keys] for r in resumed.history]
    assert resumed.best_epoch == straight.best_epoch and resumed.best_score == straight.best_score


def test_early_stopping_restores_the_best_weights(tmp_path):
    planted = iter([3.0, 1.0, 2.0, 2.5, 0.5, 0.1])  # best at epoch 1, then two worse epochs
    snapshots = []

    def score(model):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(planted)

    result = _fit(_model(), tmp_path, score_fn=score, patience=2, n_epochs=6)
    assert len(result.history) == 4 and result.stopped_early
    assert result.best_epoch == 1 and result.best_score == 1.0
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])
    best = torch.load(tmp_path / BEST, weights_only=True)
    assert all(torch.equal(best[k], snapshots[1][k]) for k in best)
    # Resuming a stopped run trains nothing more and returns the same best weights.
    again = _fit(_model(), tmp_path, score_fn=score, patience=2, n_epochs=6, resume=True)
    assert len(again.history) == 4 and all(torch.equal(v, snapshots[1][k]) for k, v in again.model.state_dict().items())


def test_training_learns_and_logs_every_epoch(tmp_path):
    X, Y, w = _problem(256)
    seed_everything(0)
    model = torch.nn.Linear(8, 2, bias=False)
    loss = lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1])  # noqa: E731
    result = fit_network(model, (X.numpy().astype(np.float64), Y), loss, n_epochs=30, batch_size=32, lr=5e-2,
                         checkpoint_dir=tmp_path, device="cpu")
    # Planted weights recovered to the noise level (noise sd 0.1 over 256 samples).
    assert torch.allclose(model.weight.detach().T, w, atol=0.05)
    lines = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(30)) and lines == result.history
    assert lines[-1]["train_loss"] < 0.1 * lines[0]["train_loss"] and lines[-1]["samples_per_s"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST, METRICS]  # no temporary files left


def test_bad_input_is_refused(tmp_path):
    X, Y, _ = _problem()
    loss = lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1])  # noqa: E731
    with pytest.raises(ValueError, match="'n_epochs'"):
        fit_network(torch.nn.Linear(8, 2), (X, Y), loss, n_epochs=0, device="cpu")
    with pytest.raises(ValueError, match="'fp16' needs a CUDA"):
        fit_network(torch.nn.Linear(8, 2), (X, Y), loss, precision="fp16", device="cpu")
    with pytest.raises(ValueError, match="'score_fn'.*'val_data'"):
        fit_network(torch.nn.Linear(8, 2), (X, Y), loss, score_fn=lambda m: 0.0, device="cpu")
    with pytest.raises(ValueError, match="same first dimension"):
        fit_network(torch.nn.Linear(8, 2), (X, Y[:10]), loss, device="cpu")
    with pytest.raises(ValueError, match="scalar tensor"):
        fit_network(torch.nn.Linear(8, 2), (X, Y), lambda m, b: m(b[0]), device="cpu")
    with pytest.raises(FloatingPointError, match="loss is nan"):
        fit_network(torch.nn.Linear(8, 2), (X, Y), lambda m, b: loss(m, b) * float("nan"), device="cpu")
    fit_network(torch.nn.Linear(8, 2), (X, Y), loss, n_epochs=1, checkpoint_dir=tmp_path, device="cpu")
    with pytest.raises(ValueError, match="resume=True"):
        fit_network(torch.nn.Linear(8, 2), (X, Y), loss, n_epochs=1, checkpoint_dir=tmp_path, device="cpu")
    with pytest.raises(ValueError, match="batch_size"):
        fit_network(torch.nn.Linear(8, 2), (X, Y), loss, n_epochs=2, batch_size=8, checkpoint_dir=tmp_path,
                    resume=True, device="cpu")


def test_precision_choice():
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(ValueError, match="'precision'"):
        resolve_precision("half", torch.device("cpu"))


@pytest.mark.gpu
def test_mixed_precision_on_gpu_learns():
    X, Y, w = _problem(256)
    seed_everything(0)
    model = torch.nn.Linear(8, 2, bias=False)
    loss = lambda m, b: torch.nn.functional.mse_loss(m(b[0]).float(), b[1])  # noqa: E731
    for precision in ("bf16", "fp16"):
        result = fit_network(model, (X, Y), loss, n_epochs=30, batch_size=32, lr=5e-2, precision=precision,
                             device="cuda")
        # bf16 keeps 8 mantissa bits: weights agree with the planted ones to ~1e-2 relative plus the noise level.
        assert torch.allclose(result.model.weight.detach().T.cpu(), w, atol=0.08), precision


def test_import_stays_light():
    import subprocess
    import sys

    code = "import sys, neurodec.neural; print(sorted({'torch', 'sklearn', 'mne'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

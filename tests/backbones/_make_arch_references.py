"""Write ``data/arch_references.json``: outputs of the authors' own code for small configurations.

Not a test. Run it by hand with local checkouts of the authors' repositories
(their code is imported from there, never copied into neurodec)::

    python tests/backbones/_make_arch_references.py --hornet ~/src/HorNet --repmlp ~/src/RepMLP \\
        --deeplab2-parent ~/src --tf-python ~/venvs/tf/bin/python

The weights come from ``fill_deterministic_`` applied in sorted-name order, so
the tests can rebuild identical weights in neurodec's models; the MOAT weights
are written under deeplab2's TensorFlow variable names and run by TensorFlow in
a separate interpreter (``--tf-python``, with tensorflow and pyyaml installed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _archs_checks import REFERENCES, fill_deterministic_, reference_input, small_moat

_TF_SCRIPT = """
import json, sys, numpy as np, tensorflow as tf
sys.path.insert(0, sys.argv[1])
from deeplab2.model.pixel_encoder.moat import MOAT
from deeplab2.model.layers import moat_attention as ma
data = dict(np.load(sys.argv[2]))
x = data.pop("__input__")
model = MOAT(stem_size=[8, 8], block_type=["mbconv", "mbconv", "moat", "moat"], num_blocks=[1, 1, 2, 1],
             hidden_size=[16, 32, 64, 64], window_size=[None] * 4, pool_size=3,
             build_classification_head_with_class_num=5)
model(tf.keras.Input(shape=x.shape[1:]))
for v in model.variables:
    name = v.name[:-2]
    v.assign(data[name] if name in data else data["moat/stem/" + name])
for layer in model.submodules:  # build() cached the bias from the initial table (eager mode)
    if isinstance(layer, ma.Attention) and layer.reindexed_position_embedding is not None:
        h, w = layer._build_input_shape.as_list()[-3:-1]
        emb = tf.image.resize(tf.expand_dims(layer.relative_position_embedding, -1), [2 * h - 1, 2 * w - 1])
        layer.reindexed_position_embedding = ma.reindex_2d_einsum_lookup(tf.squeeze(emb, -1), h, w, h - 1, w - 1, h_axis=1)
print(json.dumps(model(x, training=False).numpy().tolist()))
"""


def _logits(model: torch.nn.Module, x: torch.Tensor) -> list:
    with torch.no_grad():
        return model.eval()(x).tolist()


def _hornet(root: Path) -> dict:
    sys.path.insert(0, str(root))
    with contextlib.redirect_stdout(io.StringIO()):  # their gnconv prints its configuration
        import hornet as ref

        gn = ref.gnconv
        model = ref.HorNet(depths=[1, 1, 2, 1], base_dim=8, num_classes=5, gnconv=[
            partial(gn, order=2, s=1 / 3), partial(gn, order=3, s=1 / 3),
            partial(gn, order=4, s=1 / 3, h=4, w=3, gflayer=ref.GlobalLocalFilter),
            partial(gn, order=5, s=1 / 3, h=2, w=2, gflayer=ref.GlobalLocalFilter),
        ])  # fmt: skip
    fill_deterministic_(model)
    return {str(size): _logits(model, reference_input(size)) for size in (64, 96)}


def _repmlpnet(root: Path) -> dict:
    sys.path.insert(0, str(root))
    import repmlpnet as ref

    model = ref.RepMLPNet(num_class=5, num_blocks=(1, 1, 2, 1), channels=(8, 16, 32, 64), hs=(8, 4, 2, 2),
                          ws=(8, 4, 2, 2), sharesets_nums=(1, 4, 8, 16), reparam_conv_k=(1, 3))  # fmt: skip
    fill_deterministic_(model)
    out = {"train": _logits(model, reference_input(64))}
    model.locality_injection()
    out["deploy"] = _logits(model, reference_input(64))
    return out


def _moat(deeplab2_parent: Path, tf_python: str) -> dict:
    from test_archs_moat import to_tf_variables

    model = fill_deterministic_(small_moat())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.npz"
        np.savez(path, __input__=reference_input(64).permute(0, 2, 3, 1).numpy(), **to_tf_variables(model))
        result = subprocess.run(
            [tf_python, "-c", _TF_SCRIPT, str(deeplab2_parent), str(path)], capture_output=True, text=True, check=True
        )
    return {"64": json.loads(result.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hornet", type=Path, required=True, help="checkout of github.com/raoyongming/HorNet")
    parser.add_argument("--repmlp", type=Path, required=True, help="checkout of github.com/DingXiaoH/RepMLP")
    parser.add_argument("--deeplab2-parent", type=Path, required=True, help="folder holding a deeplab2 checkout")
    parser.add_argument("--tf-python", required=True, help="python interpreter with tensorflow installed")
    parser.add_argument("--commits", default="", help="commits of the three checkouts, recorded as provenance")
    args = parser.parse_args()
    from neurodec._torchvision import enable_torchvision

    enable_torchvision()  # the authors' HorNet imports timm
    references = {
        "provenance": f"Outputs of the authors' code ({args.commits}); torch {torch.__version__}.",
        "hornet": _hornet(args.hornet),
        "repmlpnet": _repmlpnet(args.repmlp),
        "moat": _moat(args.deeplab2_parent, args.tf_python),
    }
    REFERENCES.write_text(json.dumps(references, indent=1) + "\n")
    print(f"wrote {REFERENCES}")


if __name__ == "__main__":
    main()

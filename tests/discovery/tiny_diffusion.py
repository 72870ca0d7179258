"""A tiny randomly initialized Stable Diffusion pipeline, built offline from configs, and planted encoders.

The tokenizer is a byte-level CLIP tokenizer with no merges: its vocabulary is
the 256 byte symbols (plain and word-final) plus the two special tokens, written
to a temporary folder, so no file has to be downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from neurodec.discovery.diffusion import import_diffusers


def _byte_symbols() -> list[str]:
    # GPT-2's reversible byte -> printable-unicode table, which CLIP's BPE uses.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def tiny_pipeline(folder: Path, *, scheduler: str = "ddim", seed: int = 0, sample_size: int = 8):
    """A StableDiffusionPipeline with a (8, 16)-channel UNet and VAE; images of 2 * sample_size pixels."""
    diffusers = import_diffusers()
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=sample_size, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=2 * sample_size,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=16, intermediate_size=32, num_attention_heads=2,
        num_hidden_layers=2, vocab_size=520, max_position_embeddings=77,
    ))
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    config = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1}
    schedulers = {
        "ddim": lambda: diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=False, **config),
        "dpm": lambda: diffusers.DPMSolverMultistepScheduler(**config),
        "unipc": lambda: diffusers.UniPCMultistepScheduler(**config),
        "euler": lambda: diffusers.EulerDiscreteScheduler(**config),
    }
    pipe = diffusers.StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=schedulers[scheduler](),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


class ColourEncoder(torch.nn.Module):
    """Planted encoder: units read out the mean colour of the image with fixed weights, (N, 3, H, W) -> (N, n_units)."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weights", weights)  # (3, n_units)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3)) @ self.weights

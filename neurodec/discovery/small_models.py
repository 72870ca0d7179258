"""Small randomly initialized generators for CPU runs: latent-diffusion pipelines (text- and image-embedding-conditioned) and a GPT-2 captioner decoder.

Real diffusion and language-model weights are gigabytes and come from the hub
or a local folder (:func:`~neurodec.discovery.load_diffusion_pipeline`,
``PrefixCaptioner("gpt2")``). These builders make the same architectures at
toy width from configs, offline and in well under a second, so that every
discovery method runs end to end on a laptop, in the demo and in tests.
Their outputs are what random weights give: the diffusion pipeline's images
are textures, not photographs (guidance still steers them, which is what a
demo or test checks); the language model learns the captions it is trained
on and nothing more.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["make_small_diffusion_pipeline", "make_small_language_model", "make_small_unclip_pipeline"]


def _byte_symbols() -> list[str]:
    """GPT-2's reversible byte -> printable-unicode table, which CLIP's BPE vocabulary is written in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def _byte_level_clip_tokenizer() -> Any:
    """A CLIP tokenizer with no merges: every byte is a token (no vocabulary file to download)."""
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    # CLIPTokenizer reads its vocabulary from files, once, at construction.
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (Path(folder) / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        return CLIPTokenizer(str(Path(folder) / "vocab.json"), str(Path(folder) / "merges.txt"), model_max_length=77)


def _check_sizes(image_size: int, widths: Sequence[int], scheduler: str) -> tuple[int, ...]:
    """Validate the toy pipeline's sizes; return the widths as ints."""
    from .diffusion import _SCHEDULER_NAMES

    if scheduler not in _SCHEDULER_NAMES:
        raise ValueError(f"The 'scheduler' parameter must be one of {sorted(_SCHEDULER_NAMES)}. Got {scheduler!r} instead.")
    widths = tuple(int(w) for w in widths)
    if len(widths) < 2 or any(w < 4 or w % 4 for w in widths):
        raise ValueError(f"The 'widths' parameter must list at least two multiples of 4. Got {widths!r} instead.")
    factor = 2 ** (len(widths) - 1)
    if image_size < factor or image_size % factor:
        raise ValueError(f"The 'image_size' parameter must be a positive multiple of {factor}. Got {image_size!r} instead.")
    return widths


def _small_components(
    image_size: int, widths: tuple[int, ...], scheduler: str, random_state: int, **unet_kwargs: Any
) -> dict[str, Any]:
    """The UNet, VAE, text encoder, tokenizer and sampler every toy Stable-Diffusion-like pipeline shares."""
    import torch

    from .diffusion import _SCHEDULER_NAMES, import_diffusers

    diffusers = import_diffusers()
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(random_state)
    n, factor = len(widths), 2 ** (len(widths) - 1)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=widths, layers_per_block=1, sample_size=image_size // factor, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4, **unet_kwargs,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=widths, in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n, sample_size=image_size,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=16, intermediate_size=32, num_attention_heads=2,
        num_hidden_layers=2, vocab_size=520, max_position_embeddings=77,
    ))
    # Stable Diffusion's noise schedule (scaled linear betas), as its released configs set it.
    config = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1}
    if scheduler == "ddim":
        config.update(clip_sample=False, set_alpha_to_one=False)
    sampler = getattr(diffusers, _SCHEDULER_NAMES[scheduler])(**config)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": _byte_level_clip_tokenizer(), "scheduler": sampler}


def make_small_diffusion_pipeline(
    *, image_size: int = 64, widths: Sequence[int] = (8, 16), scheduler: str = "dpm", random_state: int = 0
) -> Any:
    """A Stable-Diffusion-architecture pipeline with random weights, at toy width.

    Parameters
    ----------
    image_size : int
        Side of the generated images in pixels (even; the VAE halves it once
        per block after the first, so latents are ``image_size / 2`` with the
        default two blocks).
    widths : sequence of int
        Channels of the UNet's and the VAE's blocks (multiples of 4).
    scheduler : {"dpm", "ddim", "unipc"}
        Sampler, as in :func:`~neurodec.discovery.load_diffusion_pipeline`.
    random_state : int
        Seed of the weights.

    Returns
    -------
    diffusers.StableDiffusionPipeline
        On the CPU, progress bar off, no safety checker; the tokenizer is
        byte-level (every byte a token), its text encoder 2 layers of width 16.
    """
    from .diffusion import import_diffusers

    widths = _check_sizes(image_size, widths, scheduler)
    parts = _small_components(image_size, widths, scheduler, random_state)
    pipe = import_diffusers().StableDiffusionPipeline(
        **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_small_unclip_pipeline(
    *,
    embedding_dim: int = 32,
    image_size: int = 32,
    widths: Sequence[int] = (8, 16),
    scheduler: str = "dpm",
    random_state: int = 0,
) -> Any:
    """A Stable unCLIP (image-embedding-conditioned) pipeline with random weights, at toy width.

    The architecture of ``"stabilityai/stable-diffusion-2-1-unclip"``: the UNet
    takes the (noise-augmented) CLIP image embedding through its class-embedding
    projection, the text prompt through cross-attention.

    Parameters
    ----------
    embedding_dim : int
        Dimension of the image embeddings it is conditioned on (the CLIP
        vision model's projection; 1024 for ViT-H/14 in the real model).
    image_size : int
        Side of the generated images in pixels.
    widths : sequence of int
        Channels of the UNet's and the VAE's blocks (multiples of 4).
    scheduler : {"dpm", "ddim", "unipc"}
        Sampler, as in :func:`~neurodec.discovery.load_diffusion_pipeline`.
    random_state : int
        Seed of the weights.

    Returns
    -------
    diffusers.StableUnCLIPImg2ImgPipeline
        On the CPU, progress bar off; its CLIP vision encoder (2 layers of
        width 16, patch 4, on ``image_size`` pixels) projects to ``embedding_dim``.
    """
    import torch

    from .diffusion import import_diffusers

    if int(embedding_dim) < 1:
        raise ValueError(f"The 'embedding_dim' parameter must be a positive integer. Got {embedding_dim!r} instead.")
    widths = _check_sizes(image_size, widths, scheduler)
    diffusers = import_diffusers()
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    # The UNet's class embedding sees the image embedding concatenated with the
    # sinusoidal embedding of its noise level, hence twice the dimension.
    parts = _small_components(
        image_size, widths, scheduler, random_state,
        class_embed_type="projection", projection_class_embeddings_input_dim=2 * int(embedding_dim),
    )
    torch.manual_seed(random_state + 1)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
        image_size=image_size, patch_size=4, projection_dim=int(embedding_dim),
    ))
    processor = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    pipe = diffusers.StableUnCLIPImg2ImgPipeline(
        feature_extractor=processor, image_encoder=image_encoder,
        image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=int(embedding_dim)),
        image_noising_scheduler=diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2"), **parts,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_small_language_model(
    captions: Sequence[str], *, hidden: int = 64, n_layer: int = 2, n_positions: int = 64, random_state: int = 0
) -> tuple[Any, Any]:
    """A randomly initialized GPT-2 and a word-level tokenizer trained on ``captions``, for :class:`PrefixCaptioner`.

    Parameters
    ----------
    captions : sequence of str
        The captions the captioner will be trained on; their words are the
        tokenizer's vocabulary (other words become ``<unk>``).
    hidden, n_layer : int
        Width and depth of the GPT-2.
    n_positions : int
        Longest sequence (prefix + caption tokens) the model takes.
    random_state : int
        Seed of the weights.

    Returns
    -------
    model : transformers.GPT2LMHeadModel
    tokenizer : transformers.PreTrainedTokenizerFast
        Whitespace-split words, end-of-text token ``<|endoftext|>``.

    Examples
    --------
    >>> decoder, tokenizer = make_small_language_model(captions)  # doctest: +SKIP
    >>> captioner = PrefixCaptioner(decoder, tokenizer, train_decoder=True).fit(embeddings, captions)  # doctest: +SKIP
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from .._torchvision import enable_torchvision

    captions = [str(c) for c in captions]
    if not captions:
        raise ValueError("make_small_language_model needs at least one caption to build its vocabulary.")
    enable_torchvision()
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(captions, trainers.WordLevelTrainer(special_tokens=["<|endoftext|>", "<unk>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", unk_token="<unk>")
    torch.manual_seed(random_state)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=hidden, n_layer=n_layer, n_head=2,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return GPT2LMHeadModel(config), tokenizer

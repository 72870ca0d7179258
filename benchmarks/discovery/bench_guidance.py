"""Time per brain-guided sampler step vs an unguided step of the same pipeline (goal: ratio <= 3).

The unguided reference is the pipeline's own ``__call__`` (no prompt, CFG off,
latent output), the guided run is :func:`neurodec.discovery.brain_guided_images`.
Each is timed at two step counts and the per-step time is the difference
divided by the difference in steps, so that fixed costs (text encoding, the
final decode) cancel. Weights are random (no download): the timings depend on
the architecture only.

    python benchmarks/discovery/bench_guidance.py --config small
    python benchmarks/discovery/bench_guidance.py --config sd --device cuda --dtype float16 --memory-lean --out sd_cuda.json

Configs: ``tiny`` (the tests' pipeline, 16 px), ``small`` (64 px, 3-level UNet),
``sd`` (Stable Diffusion 1.x/2.x-base architecture, 512 px; a GPU config).
Peak memory is torch.cuda.max_memory_allocated on CUDA; on CPU it is not
measured (torch's CPU allocations are invisible to tracemalloc).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(_ROOT), str(_ROOT / "tests" / "discovery")]

from neurodec.discovery import brain_guided_images, configure_memory  # noqa: E402
from neurodec.discovery.diffusion import import_diffusers  # noqa: E402

CONFIGS = {
    "tiny": {"channels": (8, 16), "sample": 8, "vae": (8, 16), "cross": 16, "heads": 2, "groups": 4, "encoder_size": 16},
    "small": {"channels": (32, 64, 64), "sample": 16, "vae": (32, 64, 64), "cross": 64, "heads": 8, "groups": 32, "encoder_size": 64},
    "sd": {"channels": (320, 640, 1280, 1280), "sample": 64, "vae": (128, 256, 512, 512), "cross": 768, "heads": 8, "groups": 32, "encoder_size": 224},
}


def build_pipeline(name: str, dtype: torch.dtype, device: str):
    """A randomly initialized StableDiffusionPipeline of the config's architecture with a DPM-Solver++ scheduler."""
    from tiny_diffusion import tiny_pipeline

    diffusers = import_diffusers()
    cfg = CONFIGS[name]
    pipe = tiny_pipeline(Path(tempfile.mkdtemp()), scheduler="dpm")
    if name != "tiny":
        from transformers import CLIPTextConfig, CLIPTextModel

        levels = len(cfg["channels"])
        pipe.unet = diffusers.UNet2DConditionModel(
            block_out_channels=cfg["channels"], layers_per_block=2, sample_size=cfg["sample"],
            down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
            cross_attention_dim=cfg["cross"], attention_head_dim=cfg["heads"], norm_num_groups=cfg["groups"],
        )
        pipe.vae = diffusers.AutoencoderKL(
            block_out_channels=cfg["vae"], latent_channels=4, layers_per_block=2, norm_num_groups=cfg["groups"],
            down_block_types=("DownEncoderBlock2D",) * len(cfg["vae"]), up_block_types=("UpDecoderBlock2D",) * len(cfg["vae"]),
        )
        pipe.text_encoder = CLIPTextModel(CLIPTextConfig(
            bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=cfg["cross"], intermediate_size=4 * cfg["cross"],
            num_attention_heads=8, num_hidden_layers=2, vocab_size=520, max_position_embeddings=77,
        ))
    pipe.vae_scale_factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    pipe.to(device)
    return pipe if dtype == torch.float32 else pipe.to(dtype=dtype)


def build_encoder(size: int, device: str) -> torch.nn.Module:
    """A small convolutional encoder (4 strided conv layers, 256 units) standing in for a CLIP tower + readout."""
    torch.manual_seed(1)
    layers, channels = [], 3
    for width in (32, 64, 128, 128):
        layers += [torch.nn.Conv2d(channels, width, 3, stride=2, padding=1), torch.nn.GELU()]
        channels = width
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(channels, 256)]
    return torch.nn.Sequential(*layers).to(device).eval()


def per_step(fn, steps: tuple[int, int], repeats: int, cuda: bool) -> float:
    """Seconds per step: best-of-``repeats`` time difference between two step counts, over their difference.

    On CPU the clock is the process's CPU time, which other processes sharing
    the cores do not inflate (run with OMP_NUM_THREADS=1 for a single-thread
    figure); on CUDA it is wall-clock time after synchronizing.
    """
    clock = time.perf_counter if cuda else time.process_time
    times = {}
    for n in steps:
        fn(n)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize()
            start = clock()
            fn(n)
            if cuda:
                torch.cuda.synchronize()
            best = min(best, clock() - start)
        times[n] = best
    return (times[steps[1]] - times[steps[0]]) / (steps[1] - steps[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, nargs=2, default=(4, 12))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--memory-lean", action="store_true", help="attention slicing + VAE slicing (configure_memory)")
    args = parser.parse_args()

    dtype = getattr(torch, args.dtype)
    pipe = build_pipeline(args.config, dtype, args.device)
    if args.memory_lean:
        configure_memory(pipe, attention_slicing=True, vae_slicing=True)
    encoder = build_encoder(CONFIGS[args.config]["encoder_size"], args.device)
    seeds = list(range(args.batch_size))
    cuda = args.device.startswith("cuda")

    def unguided(n: int) -> None:
        with torch.no_grad():
            pipe(prompt="", num_inference_steps=n, guidance_scale=1.0, output_type="latent", num_images_per_prompt=args.batch_size)

    def guided(n: int, through_unet: bool = False) -> None:
        brain_guided_images(pipe, encoder, seeds=seeds, guidance_scale=100.0, num_inference_steps=n, batch_size=args.batch_size,
                            image_size=CONFIGS[args.config]["encoder_size"], grad_through_unet=through_unet, verbose=False)

    pipe.set_progress_bar_config(disable=True)
    result = {"config": args.config, "device": args.device, "dtype": args.dtype, "batch_size": args.batch_size,
              "steps": list(args.steps), "torch_threads": torch.get_num_threads(),
              "clock": "wall (synchronized)" if cuda else "process CPU time", "memory_lean": args.memory_lean}
    for name, fn in (("unguided", unguided), ("guided", guided), ("guided_through_unet", lambda n: guided(n, True))):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        result[f"{name}_s_per_step"] = per_step(fn, tuple(args.steps), args.repeats, cuda)
        if cuda:
            result[f"{name}_peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    result["ratio_guided"] = result["guided_s_per_step"] / result["unguided_s_per_step"]
    result["ratio_guided_through_unet"] = result["guided_through_unet_s_per_step"] / result["unguided_s_per_step"]
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

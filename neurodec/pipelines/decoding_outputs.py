"""What the decoding pipeline writes for one subject: metrics JSON, captions table, image grid, HTML report.

Everything is written atomically beside the resumable pieces of
:mod:`neurodec.pipelines.decoding`; the report's Methods text is built from
the settings the run used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_path, write_json_atomic

__all__ = ["write_decoding_outputs"]

_CITATIONS = (
    "Ozcelik, F. & VanRullen, R. (2023). Natural scene reconstruction from fMRI signals using generative latent "
    "diffusion. Scientific Reports (linear decoders, re-standardization, img2img from a low-level init).",
    "Scotti, P. S. et al. (2024). MindEye2: Shared-Subject Models Enable fMRI-To-Image With 1 Hour of Data. ICML "
    "(retrieval protocol, Stable unCLIP reconstruction).",
    "Ferrante, M. et al. (2023). Brain Captioning: Decoding human brain activity into images and text.",
)


def _grid(recon: dict[str, np.ndarray], captions: dict | None, test_ids: np.ndarray) -> Any:
    """Rows: true images, decoded low-level images (if any), reconstructions; brain captions under the last row."""
    import matplotlib.pyplot as plt

    rows = [("seen", recon["true"])]
    if "init_images" in recon:
        rows.append(("low-level", recon["init_images"]))
    rows.append(("reconstructed", recon["images"]))
    n = len(recon["images"])
    fig, axes = plt.subplots(len(rows), n, figsize=(1.9 * n, 2.0 * len(rows) + 0.6), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(np.clip(images[c], 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
            if r == 0:
                ax.set_title(str(test_ids[c]), fontsize=8)
            if r == len(rows) - 1 and captions is not None:
                ax.set_xlabel("\n".join(_wrap(captions["brain"][c])), fontsize=6)
    fig.suptitle("Test images: seen vs decoded", fontsize=10)
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 22, lines: int = 3) -> list[str]:
    words, out, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    out.append(line)
    return out[:lines]


def _methods(config: Any, metrics: dict) -> str:
    text = [
        f"Target: {config.target} features of the study {config.study.name!r}, decoded from "
        f"{metrics['n_units']} units of subject {metrics['subject']} (trials averaged per image; "
        f"{metrics['n_train']} training and {metrics['embeddings']['n_test']} test images) by a LinearDecoder "
        f"(train-statistics z-scoring of the voxels, ridge penalty per target by cross-validation; options "
        f"{config.decoder or 'default'}).",
        f"Retrieval: cosine similarity of L2-normalized embeddings among {metrics['embeddings']['n_way']} test "
        f"images per draw, {config.retrieval['n_draws']} draws; two-way identification: Pearson correlation of "
        "each decoded embedding with every true one. Evaluation hygiene (Shirakawa et al. 2024): every metric "
        "is also reported on the half of the test images least similar (cosine, in the target space) to their "
        "nearest training image, with bias-corrected bootstrap intervals over test images.",
    ]
    if config.reconstruction is not None:
        section = config.reconstruction
        pipe = section["pipeline"] if section["pipeline"] != "small" else \
            "a small random-weight Stable unCLIP pipeline (textures, not photographs)"
        text.append(
            f"Reconstruction: the decoded embeddings of the first {metrics['reconstruction']['n_images']} test images "
            f"condition {pipe} ({section['scheduler']} sampler, options {section['options'] or 'default'})"
            + ("; a second LinearDecoder decodes the pipeline VAE's latents, whose decoding is the low-level init "
               "of img2img" if section["low_level"] else "")
            + ("; the brain captions are the text prompts" if section["prompts"] else "") + "."
        )
    if config.captions is not None:
        text.append(
            f"Captions: a ClipCap-style PrefixCaptioner ({config.captions['captioner']}) trained on the training "
            "images' target embeddings and captions captions each decoded embedding (brain captions); the baseline "
            "takes the first caption of the training image whose embedding is nearest (cosine) to the decoded one. "
            "Scored against the test images' captions under the coco protocol (pycocoevalcap)."
        )
    if config.outputs.get("data_description"):
        text.append(f"Data: {config.outputs['data_description']}")
    return "\n\n".join([*text, "References: " + " ".join(_CITATIONS)])


def _tables(metrics: dict) -> dict[str, pd.DataFrame]:
    emb = metrics["embeddings"]
    rows = [{"metric": f"top-{k} {d.replace('_', ' ')}", "value": emb[f"top{k}"][d], "chance": emb[f"top{k}"]["chance"]}
            for k in (1, 5) if f"top{k}" in emb for d in ("image_retrieval", "brain_retrieval")]
    rows.append({"metric": "two-way identification", "value": emb["two_way_identification"], "chance": 0.5})
    tables = {"Decoded embeddings": pd.DataFrame(rows),
              "Decoded embeddings: all test images and the half least similar to any training image "
              "(bootstrap 95% intervals)": pd.DataFrame(emb["subsets"])}
    if "reconstruction" in metrics:
        recon = {k: v for k, v in metrics["reconstruction"].items() if k not in ("n_images", "subsets")}
        tables["Reconstructions"] = pd.DataFrame({"metric": list(recon), "value": list(recon.values())})
        if "subsets" in metrics["reconstruction"]:
            tables["Reconstructions: all and least-similar half"] = pd.DataFrame(metrics["reconstruction"]["subsets"])
    if "captions" in metrics:
        tables["Captions (coco protocol)"] = pd.DataFrame(metrics["captions"]).rename_axis("metric").reset_index()
    return tables


def write_decoding_outputs(
    config: Any, pieces: Any, metrics: dict, captions: dict | None, recon: dict | None, test_ids: np.ndarray
) -> list[Path]:
    """Write the metrics JSON, the captions table, the image grid and the HTML report of one subject.

    Parameters
    ----------
    config : DecodingConfig
    pieces : the run's resumable pieces (their folder, names and files)
    metrics : dict
        The scores (written as JSON).
    captions : dict or None
        "brain", "nearest" and "references" lists, one entry per test image.
    recon : dict or None
        "images", "true" and optionally "init_images", arrays of shape (n_images, H, W, 3).
    test_ids : array of shape (n_test,)
        The test images' stimulus ids.

    Returns
    -------
    list of Path
        Every file of the subject's run (the pieces first, the report last).
    """
    from ..viz import ReportSection, figure_to_png, write_html_report

    files = list(pieces.files)
    metrics_path = pieces.path("metrics", "scores", ".json")
    write_json_atomic(metrics_path, metrics)
    files.append(metrics_path)
    figures = []
    if captions is not None:
        table = pd.DataFrame({"stimulus_id": test_ids, "brain_caption": captions["brain"],
                              "nearest_training_caption": captions["nearest"],
                              "reference": [refs[0] if refs else "" for refs in captions["references"]]})
        path = pieces.path("captions", "captions", ".csv")
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
        files.append(path)
    if recon is not None:
        fig = _grid(recon, captions, test_ids)
        path = pieces.path("reconstructions", "figure", ".png")
        with atomic_path(path) as tmp:
            tmp.write_bytes(figure_to_png(fig))
        files.append(path)
        figures.append(fig)
    if config.outputs.get("report", True):
        tables = _tables(metrics)
        if captions is not None:
            tables["Captions of the first test images"] = table.head(12)
        section = ReportSection(title=f"Decoding {config.target}", text=_methods(config, metrics), figures=figures,
                                tables=tables, files=list(files))
        report = pieces.path("report", "decoding", ".html")
        write_html_report(report, [section], title=f"{config.name}: subject {metrics['subject']}")
        files.append(report)
    import matplotlib.pyplot as plt

    for fig in figures:
        plt.close(fig)
    return files

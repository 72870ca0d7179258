"""What the discovery pipeline writes for one subject: tables, maps, image grids and an HTML report.

Everything goes under ``<root>/derivatives/neurodec/sub-<label>/discovery/``
with BIDS-style names (``sub-01_model-..._desc-mds_clusters.csv``), written
atomically; each method adds a report section whose Methods text is built
from the settings the method actually ran with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import atomic_path, write_json_atomic

__all__ = ["SubjectOutputs"]

_CITATIONS = {
    "mds": "Burg, M. F. et al. (2024). Most discriminative stimuli for functional cell type clustering. ICLR.",
    "braindive": "Luo, A. F. et al. (2023). Brain Diffusion for Visual Exploration: Cortical Discovery using "
                 "Large Scale Generative Models. NeurIPS.",
    "brainscuba": "Luo, A. F. et al. (2024). BrainSCUBA: Fine-Grained Natural Language Captions of Visual Cortex "
                  "Selectivity. ICLR.",
    "lavca": "Matsuyama, T. et al. (2025). LaVCa: LLM-assisted Visual Cortex Captioning.",
}


def _image_panel(images: np.ndarray, titles: list[str], *, title: str, ncols: int = 8):
    """A grid figure of images (n, H, W, 3) in [0, 1] with a title per panel."""
    import matplotlib.pyplot as plt

    n = len(images)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.8 * ncols, 1.9 * nrows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, label in zip(axes.ravel(), images, titles):
        ax.imshow(np.clip(image, 0, 1))
        ax.set_title(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _unit_table(units: np.ndarray, responses: Any) -> pd.DataFrame:
    """The selected units' metadata: their index in the model and their voxel/vertex/ROI columns."""
    meta = responses.units.iloc[units].reset_index(drop=True)
    keep = [c for c in meta.columns if c in ("i", "j", "k", "hemi", "vertex", "channel") or c.startswith("roi:")]
    return pd.concat([pd.DataFrame({"unit": units}), meta[keep]], axis=1)


class SubjectOutputs:
    """Collects one subject's discovery outputs and report sections; :meth:`finish` writes the report."""

    def __init__(self, config: Any, responses: Any, model: Any) -> None:
        from ..viz import derivatives_folder

        self.config, self.responses, self.model = config, responses, model
        self.folder = derivatives_folder(config.output_root, responses.subject, datatype="discovery")
        self.sections: list[Any] = []
        self.files: list[Path] = []

    # ------------------------------------------------------------- helpers
    def _name(self, desc: str, suffix: str, extension: str) -> Path:
        from ..viz import bids_filename

        return self.folder / bids_filename(self.responses.subject, suffix, extension, model=self.config.model, desc=desc)

    def _csv(self, frame: pd.DataFrame, desc: str, suffix: str) -> Path:
        path = self._name(desc, suffix, ".csv")
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
        self.files.append(path)
        return path

    def _png(self, figure: Any, desc: str) -> Path:
        from ..viz import figure_to_png

        path = self._name(desc, "figure", ".png")
        with atomic_path(path) as tmp:
            tmp.write_bytes(figure_to_png(figure))
        self.files.append(path)
        return path

    def _json(self, record: dict, desc: str, suffix: str) -> Path:
        path = self._name(desc, suffix, ".json")
        write_json_atomic(path, record)
        self.files.append(path)
        return path

    def _section(self, title: str, text: str, figures: list, tables: dict, files: list[Path]) -> None:
        from ..viz import ReportSection

        self.sections.append(ReportSection(title=title, text=text, figures=figures, tables=tables, files=files))

    def _describe_units(self, selection: dict[str, list[str] | None], n: int) -> str:
        rois = "; ".join(f"{atlas}: {'all labels' if labels is None else ', '.join(labels)}" for atlas, labels in selection.items())
        return f"{n} voxels ({rois})"

    # ------------------------------------------------------------- methods
    def mds(self, result: Any, units: np.ndarray, responses: Any, section: dict, model_name: str) -> None:
        table = _unit_table(units, responses)
        table["cluster"] = result.labels
        files = [self._csv(table, "mds", "clusters")]
        figures = []
        stimuli = np.moveaxis(np.asarray(result.stimuli, dtype=np.float64), 1, -1)
        low = stimuli.min(axis=(1, 2, 3), keepdims=True)
        span = np.maximum(stimuli.max(axis=(1, 2, 3), keepdims=True) - low, np.finfo(float).tiny)
        counts = np.bincount(result.labels, minlength=result.n_clusters)
        fig = _image_panel((stimuli - low) / span, [f"cluster {k} (n={c})" for k, c in enumerate(counts)],
                           title="Most discriminative stimuli (min-max scaled per stimulus)")
        files.append(self._png(fig, "mds"))
        figures.append(fig)
        if {"i", "j", "k"} <= set(responses.units.columns) and "affine" in responses.info:
            from ..viz import plot_volume_map, write_volume_map

            # Cluster k is written as k + 1 so that 0 / NaN stays "not clustered".
            path = write_volume_map((result.labels + 1).astype(np.float32), responses.units.iloc[units],
                                    responses.info, self._name("mds", "dseg", ".nii.gz"))
            self.files.append(path)
            files.append(path)
            figures.append(plot_volume_map(
                result.labels.astype(float), responses.units.iloc[units], responses.info, kind="stat",
                categories=[f"cluster {k}" for k in range(result.n_clusters)], title="MDS clusters in brain space",
            ))
        files.append(self._json({"n_clusters_requested": section["n_clusters"], "n_clusters": result.n_clusters,
                    "n_iter": result.n_iter, "converged": bool(result.converged),
                    "objective": np.asarray(result.objective).tolist(), "options": section["options"]}, "mds", "summary"))
        text = (
            f"Most discriminative stimuli (MDS; {_CITATIONS['mds']}) clustered "
            f"{self._describe_units(section['units'], units.size)} of the encoding model {model_name} into "
            f"{section['n_clusters']} requested clusters: stimuli of shape 3 x {section['image_size']} x "
            f"{section['image_size']} pixels were optimized through the model (backbone and fitted ridge weights) "
            f"to drive one cluster's voxels more than the others' (softmax contrast), alternating with reassignment "
            f"of every voxel to the stimulus that drives it most, until no voxel moved. Settings: "
            f"{section['options'] or 'defaults'}. Result: {result.n_clusters} clusters after {result.n_iter} "
            f"iterations ({'converged' if result.converged else 'not converged: raise max_iter'}); cluster sizes "
            f"{counts.tolist()}; final objective {float(np.asarray(result.objective)[-1]):.3f} "
            f"(at most log K = {np.log(max(result.n_clusters, 1)):.3f})."
        )
        self._section("Most discriminative stimuli", text, figures, {"Cluster sizes": pd.DataFrame(
            {"cluster": np.arange(result.n_clusters), "voxels": counts})}, files)

    def braindive(self, result: dict, units: np.ndarray, section: dict, model_name: str) -> None:
        guided, unguided, comparison = result["guided"], result["unguided"], result["comparison"]
        scores = pd.DataFrame({"seed": guided.seeds, "guided": guided.scores})
        if unguided is not None:
            scores["unguided"] = unguided.scores
        files = [self._csv(scores, "braindive", "scores")]
        top = guided.top(section["top"])
        figures = [top.plot_grid(title=f"Top {section['top']} brain-guided images")]
        files.append(self._png(figures[-1], "braindive"))
        if unguided is not None:
            figures.append(unguided.top(section["top"]).plot_grid(title="Same seeds without guidance"))
            files.append(self._png(figures[-1], "braindiveunguided"))
        summary = comparison.summary if hasattr(comparison, "summary") else {}
        files.append(self._json({"settings": guided.settings, "summary": summary,
                                 "seeds": [int(s) for s in guided.seeds]}, "braindive", "summary"))
        pipeline = section["pipeline"]
        described = ("a small randomly initialized Stable-Diffusion-architecture pipeline (neurodec's "
                     "make_small_diffusion_pipeline: its images are textures, not photographs)") if pipeline == "small" else pipeline
        paired = ""
        if unguided is not None:
            better = int(np.sum(guided.scores > unguided.scores))
            paired = (f" Paired with the same seeds and start noise without guidance, {better} of {len(guided.seeds)} "
                      f"guided images scored higher (mean predicted activation {np.mean(guided.scores):.3f} vs "
                      f"{np.mean(unguided.scores):.3f}).")
        text = (
            f"Brain-guided diffusion (BrainDiVE; {_CITATIONS['braindive']}) synthesized {len(guided.seeds)} images "
            f"with {described}, steering every sampler step by the gradient of the mean predicted response of "
            f"{self._describe_units(section['units'], units.size)} under the encoding model {model_name}. Settings: "
            f"{guided.settings}. Images are ranked by predicted activation; the top {section['top']} are shown." + paired
            + f" The {section['natural_top_k']} natural stimuli with the highest predicted activation are the reference."
        )
        tables = {"Predicted activation": pd.DataFrame([summary])} if summary else {}
        self._section("Brain-guided images (BrainDiVE)", text, figures, tables, files)

    def captions(self, tables: dict[str, pd.DataFrame], responses: Any, section: dict, model_name: str) -> None:
        files, shown = [], {}
        for method, table in tables.items():
            plain = table.drop(columns=[c for c in table.columns if c in ("direction",)])
            meta = _unit_table(plain["unit"].to_numpy(), responses).drop(columns="unit")
            plain = pd.concat([plain.reset_index(drop=True), meta], axis=1)
            files.append(self._csv(plain, method, "captions"))
            column = "caption" if "caption" in plain else "sentence"
            shown[f"{method}: most frequent captions"] = (
                plain[column].value_counts().head(10).rename_axis(column).reset_index(name="voxels")
            )
        parts = []
        if "brainscuba" in tables:
            source = section["captioner"]
            if source == "small":
                captioner = "trained here on the training stimuli and their captions, with a small random GPT-2 decoder"
            elif (Path(source) / "mapping.safetensors").is_file():
                captioner = f"loaded from {source}"
            else:
                captioner = f"trained here on the training stimuli and their captions, decoder {source}"
            parts.append(
                f"BrainSCUBA ({_CITATIONS['brainscuba']}): each voxel's ridge weight vector was projected onto the "
                "features of the study's stimuli, both in the model's standardized feature space (softmax over the bank; settings "
                f"{section['brainscuba'] or 'defaults'}) and captioned by a CLIP-prefix captioner ({captioner}; "
                f"training settings {section['train'] or 'defaults'})."
            )
        if "lavca" in tables:
            parts.append(
                f"LaVCa ({_CITATIONS['lavca']}): each voxel's top images by predicted response, their captions, "
                "keywords by enrichment over all captions, and a template sentence (neurodec's deterministic "
                f"keyword step, not the paper's LLM; settings {section['lavca'] or 'defaults'})."
            )
        text = (f"Voxel captions of {self._describe_units(section['units'], len(next(iter(tables.values()))))} "
                f"under the encoding model {model_name}. " + " ".join(parts))
        self._section("Voxel captions", text, [], shown, files)

    # ------------------------------------------------------------- report
    def finish(self) -> list[Path]:
        """Write the HTML report (if asked) and return every file written."""
        import matplotlib.pyplot as plt

        from ..viz import bids_filename, write_html_report

        if self.config.outputs.get("report", True):
            path = self.folder / bids_filename(self.responses.subject, "report", ".html", desc="discovery")
            title = f"{self.config.name}: subject {self.responses.subject}"
            if self.config.outputs.get("data_description"):
                from ..viz import ReportSection

                self.sections.insert(0, ReportSection(title="Data", text=str(self.config.outputs["data_description"])))
            self.files.append(write_html_report(path, self.sections, title=title))
        plt.close("all")
        return self.files

"""The encoding report's Methods section and unit counts, generated from what the models recorded.

Every number here comes from the fitted models (``EncodingScores.fit_info``,
``best_alphas``, ``status``, ``bootstrap``) or from the caller (the data
description), never from defaults assumed by the report.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .scores import EncodingScores

__all__: list[str] = []

#: Packages whose versions a Methods section lists.
_SOFTWARE = ("neurodec", "numpy", "scipy", "torch", "scikit-learn", "pandas", "nibabel", "nilearn", "matplotlib",
             "timm", "open_clip_torch", "torchvision", "transformers")

#: Unit status values of EncodingModel.score, in the order the counts table lists them.
STATUS_ORDER = (
    "excluded: non-finite training responses",
    "excluded: constant training responses",
    "non-finite test responses",
    "constant test responses or prediction",
    "scored",
)


def software_versions() -> dict[str, str]:
    """Installed versions of the packages an encoding analysis depends on (without importing them)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in _SOFTWARE:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def _status(scores: EncodingScores) -> np.ndarray:
    if scores.status is not None:
        return scores.status
    # Scores made by hand (no model): all that is known is whether r2 is finite.
    return np.where(np.isfinite(scores.r2), "scored", "no score (reason not recorded)").astype(object)


def unit_counts(named: Mapping[str, EncodingScores], metric: str) -> pd.DataFrame:
    """Units per model: total, each reason for a missing score, scored, and scored with ``metric`` finite.

    The rows between "units" and "scored (finite r and R2)" add up to
    "units"; the rows starting "scored:" split "scored (finite r and R2)".
    """
    columns = {}
    for name, scores in named.items():
        status = pd.Series(_status(scores))
        counts = status.value_counts()
        order = [s for s in STATUS_ORDER if s != "scored"] + sorted(set(counts.index) - set(STATUS_ORDER))
        rows = {"units": scores.n_units}
        rows.update({s: int(counts.get(s, 0)) for s in order})
        scored = (status == "scored").to_numpy()
        rows["scored (finite r and R2)"] = int(scored.sum())
        if metric not in ("r", "r2"):
            values = scores.metric(metric)
            ok = scored & np.isfinite(values)
            no_nc = scored & ~(np.isfinite(scores.noise_ceiling) & (scores.noise_ceiling > 0))
            rows[f"scored: no positive noise ceiling ({metric} undefined)"] = int(no_nc.sum())
            rows[f"scored: other non-finite {metric}"] = int((scored & ~ok & ~no_nc).sum())
            rows[f"scored: with a finite {metric}"] = int(ok.sum())
        columns[name] = rows
    table = pd.DataFrame(columns)
    table = table.loc[[r for r in table.index if table.loc[r].sum() > 0 or r in ("units", "scored (finite r and R2)")]]
    return table.rename_axis("units").reset_index()


def _grid_text(alphas: list[float]) -> str:
    a = np.asarray(alphas, dtype=np.float64)
    if a.size > 2 and np.all(a > 0):
        steps = np.diff(np.log10(a))
        if np.allclose(steps, steps[0]):
            return f"{a.size} values log-spaced from {a[0]:g} to {a[-1]:g} ({steps[0]:g} decades apart)"
    return ", ".join(f"{v:g}" for v in a)


def alpha_distribution(named: Mapping[str, EncodingScores]) -> pd.DataFrame | None:
    """Number of fitted units that chose each alpha of the grid, one column per model."""
    columns = {}
    grid = None
    for name, scores in named.items():
        alphas = scores.fit_info.get("alphas")
        if scores.best_alphas is None or not alphas:
            continue
        grid = np.asarray(alphas, dtype=np.float64)
        chosen = scores.best_alphas[np.isfinite(scores.best_alphas)]
        position = np.argmin(np.abs(np.log10(chosen)[:, None] - np.log10(grid)[None]), axis=1)
        columns[name] = np.bincount(position, minlength=len(grid))
    if not columns:
        return None
    table = pd.DataFrame(columns)
    table.insert(0, "alpha", [f"{a:.3g}" for a in grid])
    return table


def _edges_text(scores: EncodingScores) -> str:
    alphas = np.asarray(scores.fit_info.get("alphas", []), dtype=np.float64)
    chosen = scores.best_alphas[np.isfinite(scores.best_alphas)] if scores.best_alphas is not None else np.array([])
    if not chosen.size or not alphas.size:
        return "not recorded"
    low, high = np.isclose(chosen, alphas.min()).mean(), np.isclose(chosen, alphas.max()).mean()
    q1, median, q3 = np.percentile(chosen, [25, 50, 75], method="nearest")
    return (f"median {median:.3g} (quartiles {q1:.3g} and {q3:.3g}); "
            f"{low:.0%} of units at the smallest and {high:.0%} at the largest grid value")


def _features_text(feature: Mapping[str, object]) -> str:
    weights = feature.get("weights")
    kind, _, detail = str(weights).partition(":")
    detail = f" ({detail.replace('=', ' ')})" if detail else ""
    weights_text = {"random": f"randomly initialized, untrained weights{detail}",
                    "pretrained": f"pretrained weights{detail}"}.get(
        kind, f"weights {weights}" if weights is not None else "weights not recorded")
    parts = [f"backbone {feature.get('backbone', 'not recorded')} with {weights_text}",
             f"layer {feature.get('layer', feature.get('name'))}",
             f"pooling {feature.get('pooling', 'not recorded')}"]
    reduction = feature.get("reduction")
    parts.append("no dimensionality reduction" if reduction in (None, "none") else f"reduction {reduction}")
    parts.append(f"{feature.get('n_features')} features")
    if feature.get("precision"):
        parts.append(f"computed in {feature['precision']}")
    if feature.get("preprocessing_description"):
        parts.append(f"images preprocessed as {feature['preprocessing_description']}")
    return ", ".join(parts)


def _all_features_text(named: Mapping[str, EncodingScores]) -> str:
    """One sentence on what the models share (backbone, weights, pooling...) and one line per model on the rest."""
    spaces = {name: s.fit_info.get("features", []) for name, s in named.items()}
    single = all(len(f) == 1 for f in spaces.values())
    shared_keys = ("backbone", "weights", "pooling", "reduction", "precision", "preprocessing_description")
    firsts = [f[0] for f in spaces.values() if f]
    common = {k: firsts[0].get(k) for k in shared_keys
              if firsts and all(k in f and f.get(k) == firsts[0].get(k) for f in firsts)} if single else {}
    if single and len(firsts) == len(spaces) and {"backbone", "weights"} <= set(common) and len(named) > 1:
        shared = _features_text({**common, "layer": "-", "n_features": "-"})
        shared = ", ".join(p for p in shared.split(", ") if not p.startswith(("layer -", "- features")))
        per_model = "; ".join(f"{name}: layer {f[0].get('layer', f[0].get('name'))}, {f[0].get('n_features')} features"
                              for name, f in spaces.items())
        return f"Every model: {shared}. Per model: {per_model}."
    lines = "; ".join(f"{name}: " + " + ".join(_features_text(f) for f in feats) if feats
                      else f"{name}: not recorded" for name, feats in spaces.items())
    return f"{lines}."


def _noise_ceiling_text(source: str, repeats: Mapping[int, int]) -> str:
    repeat_text = ", ".join(f"{v} with {k} repeat{'s' if k != 1 else ''}" for k, v in repeats.items()) or "unknown"
    formula = ("NC = ncsnr^2 / (ncsnr^2 + A), with A the mean of 1/n over the test stimuli's repeat counts n "
               f"({repeat_text}; Allen et al. 2022, Algonauts convention for mixed repeat counts)")
    text = {
        "ncsnr": f"from the dataset's per-unit noise-ceiling SNR (ncsnr): {formula}",
        "estimated": "from ncsnr estimated on the test repeats (signal and noise variance of z-scored trials): "
                     f"{formula}",
        "given": "given by the caller",
    }.get(source, f"source {source!r}")
    return (f"The noise ceiling NC is the fraction (0 to 1) of the variance of the repeat-averaged test responses "
            f"that a perfect model could explain, {text}. Normalized scores are R2 / NC and r / sqrt(NC). "
            "Units whose NC is zero or unknown have no normalized score.")


def methods_paragraphs(named: Mapping[str, EncodingScores], *, metric: str, data_description: str | None,
                       level: float) -> list[str]:
    """The Methods text, one paragraph per topic, from what the scores recorded."""
    first = next(iter(named.values()))
    info = first.fit_info
    data = info.get("data", {})
    paragraphs = []
    described = data_description or "No description of the data's provenance was given to the report."
    dataset = ", ".join(f"{k} {v}" for k, v in data.items() if k not in ("modality", "n_units", "root"))
    paragraphs.append(f"Data. {described} Subject {first.subject}, space {first.space or 'n/a'}, {first.modality}, "
                      f"{first.n_units} units" + (f"; {dataset}" if dataset else "") + ".")
    if not info:
        paragraphs.append("Fit. These scores carry no record of their fit (they were not made by "
                          "EncodingModel.score), so the Methods cannot state it.")
        return paragraphs
    train = (f"mean response per stimulus ({info['n_train_trials']} trials averaged over repeats into "
             f"{info['n_train']} training samples)" if info.get("average_repeats")
             else f"{info['n_train']} single training trials")
    paragraphs.append(
        f"Split. Models were trained on the dataset's training split, {train}, and tested on the held-out test "
        f"split: {info.get('n_test_trials')} trials of {info.get('n_test')} stimuli, averaged over repeats "
        f"({_noise_repeats(info)}). " + (
            "No test stimulus is in the training split." if info.get("n_shared_stimuli") == 0
            else f"{info['n_shared_stimuli']} test stimuli also occur in the training split."
            if info.get("n_shared_stimuli") else "")
    )
    paragraphs.append(f"Features. {_all_features_text(named)}")
    cv = info.get("cv")
    cv_text = (f"{cv}-fold shuffled K-fold cross-validation over training samples"
               + (" grouped by stimulus" if info.get("cv_grouped") else "")
               + f" (seed {info.get('random_state')})" if isinstance(cv, int) else f"the splitter {cv}")
    alpha_lines = "; ".join(f"{name}: {_edges_text(s)}" for name, s in named.items())
    paragraphs.append(
        f"Model. {info.get('model', 'ridge').capitalize()} regression from the features "
        + ("(each standardized with its training mean and standard deviation) " if info.get("standardize_features")
           else "(centered on their training mean) ")
        + f"to every unit, with an intercept. The penalty alpha was chosen per unit by {cv_text}, maximizing the "
        f"mean validation R2 over the grid {_grid_text(info.get('alphas', []))}; the model was then refit on all "
        f"training samples with that alpha. Chosen alpha per model: {alpha_lines}. (Units without predictable "
        "signal choose the largest alpha, a near-constant prediction, whatever the grid.)"
    )
    paragraphs.append(
        "Scores. Pearson r and R2 = 1 - SS_res / SS_tot between predicted and repeat-averaged measured test "
        f"responses, per unit. {_noise_ceiling_text(info.get('noise_ceiling', ''), info.get('test_repeats', {}))} "
        f"The report summarizes {metric}."
    )
    boot = first.bootstrap
    if boot is not None:
        paragraphs.append(
            f"Uncertainty. ROI means carry {level:.0%} bias-corrected percentile bootstrap confidence intervals "
            f"(Efron 1981): the {first.n_test} test stimuli were resampled with replacement {boot.n_bootstraps} "
            f"times (seed {boot.random_state}), "
            "every unit's r and R2 recomputed on each resample (the noise ceiling held fixed), and the ROI mean "
            "taken over the units with a finite full-sample score. Every model uses the same resamples, so model "
            "differences are paired. The best model of an ROI (highest mean) is called decided only when the "
            f"{level:.0%} interval of its paired difference to the runner-up lies above 0; otherwise undecided."
        )
    else:
        paragraphs.append("Uncertainty. No bootstrap was run (n_bootstraps=0): ROI means have no intervals and no "
                          "best model is called decided.")
    versions = ", ".join(f"{k} {v}" for k, v in software_versions().items())
    paragraphs.append(f"Software. {versions}.")
    return paragraphs


def _noise_repeats(info: Mapping[str, object]) -> str:
    repeats = info.get("test_repeats") or {}
    return ", ".join(f"{v} stimuli with {k} repeat{'s' if int(k) != 1 else ''}" for k, v in repeats.items()) or "n/a"

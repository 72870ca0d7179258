"""``neurodec demo``: the encoding pipeline end to end on a simulated NSD-format subject.

No download, CPU only, a few minutes on 2 cores:

1. generate images of faces, places and objects (:mod:`neurodec.data.synthetic_images`);
2. extract two layers of a small randomly initialized backbone and plant a
   known encoding model in a simulated subject (:mod:`neurodec.data.simulation`):
   retinotopic early visual voxels driven by an early layer, face- and
   place-selective voxels driven by a late layer, realistic spatially
   correlated noise at a known noise ceiling;
3. write single-trial betas, ROIs, ncsnr, a synthetic T1-weighted anatomy
   (``T1_to_func1pt8mm.nii.gz``, the report's map underlay), design and images
   in NSD's exact on-disk layout (:func:`neurodec.data.fixtures.nsd.write_nsd`);
4. run the encoding pipeline on that folder like on the real dataset
   (:func:`neurodec.pipelines.encoding.run_encoding_study`);
5. compare the recovered scores with the planted truth and noise ceiling.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._io import write_json_atomic
from .._logging import get_logger
from .config import config_from_dict

__all__ = ["DEMO_BACKBONE", "DemoResult", "make_demo_dataset", "run_demo", "summarize_demo"]

logger = get_logger(__name__)

#: The demo's backbone (random weights: nothing is downloaded) and layers.
DEMO_BACKBONE = "timm/resnet18"
DEMO_LAYERS = ("layer1", "layer2", "layer3", "layer4")
EARLY_LAYER, LATE_LAYER = "layer1", "layer4"
#: What the demo's report says the data are.
DATA_DESCRIPTION = (
    "Simulated subject (neurodec demo), not real fMRI: synthetic images of faces, places and objects, a planted "
    f"encoding model on a randomly initialized {DEMO_BACKBONE} ({EARLY_LAYER} drives early visual voxels, "
    f"{LATE_LAYER} face- and place-selective voxels), spatially correlated noise at known noise ceilings, "
    "written in NSD's on-disk layout."
)
GRID = 2


@dataclasses.dataclass
class DemoResult:
    """Where the demo wrote things and what it recovered."""

    root: Path
    report: Path | None
    summary: pd.DataFrame
    study: Any


def _demo_config(root: Path, random_state: int, device: str) -> dict[str, Any]:
    return {
        "name": "neurodec demo",
        "dataset": {
            "name": "nsd",
            "root": str(root / "nsd"),
            "subjects": [1],
            "options": {"roi": "nsdgeneral", "rois": ["prf-visualrois", "floc-faces", "floc-places", "streams"]},
        },
        "backbones": [
            {
                "name": DEMO_BACKBONE,
                "weights": "random",
                "layers": list(DEMO_LAYERS),
                "pooling": "grid",
                "options": {"grid": GRID},
            }
        ],
        "model": {"cv": 5},  # the default alpha grid
        "outputs": {
            "root": str(root),
            "atlas": ["prf-visualrois", "floc-faces", "floc-places", "streams"],
            "figures": True,
            "report": True,
            "data_description": DATA_DESCRIPTION,
        },
        "device": device,
        "random_state": random_state,
    }


def make_demo_dataset(
    root: str | Path,
    *,
    n_sessions: int = 4,
    trials_per_session: int = 300,
    n_shared: int = 50,
    random_state: int = 0,
    device: str = "cpu",
    verbose: bool = True,
) -> Any:
    """Write the simulated subject in NSD's layout under ``root / "nsd"``.

    The subject's synthetic T1-weighted volume is written as NSD's
    ``T1_to_func1pt8mm.nii.gz``, so the report draws its maps over it.

    Returns
    -------
    SimulatedSubject
        The planted truth (areas, driving layer, ncsnr of every brain voxel).
    """
    from ..backbones import extract_features, load
    from ..data.nsd import load_nsd_stimuli
    from ..data.fixtures.nsd import NSDSubjectData, make_nsd_design, write_nsd
    from ..data.simulation import simulate_subject, simulate_trials
    from ..data.synthetic_images import make_synthetic_images

    root = Path(root)
    n_trials = n_sessions * trials_per_session
    n_images = max(n_trials // 3, n_shared + 1)
    design = make_nsd_design(
        n_images=n_images, n_shared=n_shared, n_sessions=n_sessions, trials_per_session=trials_per_session,
        random_state=random_state,
    )
    images = make_synthetic_images(n_images, size=64, random_state=random_state)
    captions = {i: [f"a picture of a {c}"] for i, c in enumerate(images.categories)}
    # Images first, then features of the stored images in the pipeline's own
    # feature cache: the pipeline's run then finds every layer cached.
    write_nsd(root / "nsd", design=design, images=images.images, subjects={}, captions=captions,
              random_state=random_state)
    stimuli = load_nsd_stimuli(root / "nsd", ids=list(range(n_images)))
    backbone = load(DEMO_BACKBONE, weights="random", device=device, random_state=random_state)
    features = extract_features(
        backbone,
        stimuli,
        layers=list(DEMO_LAYERS),
        pooling="grid",
        grid=GRID,
        cache=root / "work" / "features",
        random_state=random_state,
        verbose=verbose,
    )
    subject = simulate_subject(
        {k: np.asarray(f.data) for k, f in features.items()},
        images.categories,
        early_layer=EARLY_LAYER,
        late_layer=LATE_LAYER,
        grid=GRID,
        random_state=random_state,
    )
    trial_images = design.trials(1)["stimulus_id"].to_numpy()
    betas = simulate_trials(subject, trial_images, random_state=random_state + 1)
    ii, jj, kk = subject.voxels.T
    sessions = []
    for s in range(n_sessions):
        block = np.zeros(subject.mask.shape + (trials_per_session,), dtype=np.float32)
        block[ii, jj, kk, :] = betas[s * trials_per_session : (s + 1) * trials_per_session].T
        sessions.append(block)
    ncsnr = np.zeros(subject.mask.shape, dtype=np.float32)
    ncsnr[ii, jj, kk] = subject.ncsnr
    write_nsd(
        root / "nsd",
        design=design,
        images=images.images,
        subjects={
            1: NSDSubjectData(
                betas=sessions, affine=subject.affine, ncsnr=ncsnr, rois=subject.rois, label_names=subject.roi_labels,
                t1=subject.t1,
            )
        },
        captions=captions,
        formats=("hdf5",),
        random_state=random_state,
    )
    truth = pd.DataFrame({"i": ii, "j": jj, "k": kk, "area": subject.area, "layer": subject.layer, "ncsnr": subject.ncsnr})
    truth.to_csv(root / "nsd" / "simulation_truth.csv", index=False)
    return subject


def summarize_demo(study: Any, truth: pd.DataFrame, *, n_test_repeats: float = 3) -> pd.DataFrame:
    """Recovered vs planted, per simulated area.

    Columns: area, n_voxels, planted layer, recovered best layer (most
    frequent over the area's voxels), median noise ceiling (planted ncsnr),
    median recovered R^2 and noise-normalized R^2 at the best layer.
    """
    from ..data import noise_ceiling_from_ncsnr

    scores = next(iter(study.scores.values()))
    names = list(scores)
    first = scores[names[0]]
    key = first.units[["i", "j", "k"]].astype(int).apply(tuple, axis=1)
    truth_by_voxel = truth.set_index(truth[["i", "j", "k"]].astype(int).apply(tuple, axis=1))
    area = truth_by_voxel.loc[key, "area"].to_numpy()
    planted = truth_by_voxel.loc[key, "layer"].to_numpy()
    r2 = np.vstack([scores[n].r2 for n in names])
    best = np.nanargmax(np.where(np.isfinite(r2), r2, -np.inf), axis=0)
    rows = []
    for name in ("early", "face", "place", "none"):
        vox = area == name
        if not vox.any():
            continue
        layers = pd.Series([names[b].split("/")[-1] for b in best[vox]])
        nc = noise_ceiling_from_ncsnr(truth_by_voxel.loc[key, "ncsnr"].to_numpy()[vox], n_test_repeats)
        best_r2 = r2[best[vox], np.flatnonzero(vox)]
        rows.append(
            {
                "area": name,
                "n_voxels": int(vox.sum()),
                "planted_layer": planted[vox][0] or "-",
                "recovered_layer": layers.mode().iloc[0],
                "noise_ceiling": float(np.median(nc)),
                "r2": float(np.nanmedian(best_r2)),
                "r2_normalized": float(np.nanmedian(best_r2 / nc)) if name != "none" else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def run_demo(
    root: str | Path = "neurodec_demo",
    *,
    random_state: int = 0,
    device: str = "cpu",
    verbose: bool = True,
    **dataset_size: int,
) -> DemoResult:
    """Simulate, write, run the encoding pipeline and compare with the truth.

    Parameters
    ----------
    root : path-like
        Folder for the dataset (``root/nsd``), the feature cache and fits
        (``root/work``) and the outputs (``root/derivatives/neurodec``).
    random_state : int
        Seed of the images, the backbone's random weights and the simulation.
    device : {"cpu", "cuda", "auto"}
    verbose : bool
        Progress bars and log messages.
    **dataset_size
        ``n_sessions``, ``trials_per_session``, ``n_shared`` for
        :func:`make_demo_dataset` (smaller values run faster).

    Returns
    -------
    DemoResult

    Notes
    -----
    Re-running in the same folder reuses the dataset, cached features and fits.
    """
    from .encoding import run_encoding_study

    root = Path(root).resolve()
    marker = root / "nsd" / "simulation_truth.csv"
    if not marker.is_file():
        logger.info("Writing the simulated NSD-format dataset under %s", root / "nsd")
        make_demo_dataset(root, random_state=random_state, device=device, verbose=verbose, **dataset_size)
    # Noise voxels have no driving layer: keep their "" rather than reading it back as NaN.
    truth = pd.read_csv(marker, keep_default_na=False)
    config = config_from_dict(_demo_config(root, random_state, device), base_dir=root, source="demo")
    write_json_atomic(root / "demo_config.json", _demo_config(root, random_state, device))
    study = run_encoding_study(config, verbose=verbose)
    summary = summarize_demo(study, truth)
    reports = next(iter(study.outputs.values())).get("report", [])
    return DemoResult(root=root, report=reports[0] if reports else None, summary=summary, study=study)

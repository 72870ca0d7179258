"""Preprocessing on the device: torchvision.transforms.v2 on uint8 tensors against each source's PIL path.

Tolerance of the preprocessing comparison. Both paths resize uint8 images
with the same antialiased kernels (PIL's bicubic has a = -0.5, and so has
torch's antialiased bicubic) and round the result to uint8; they differ only
in the fixed-point arithmetic before that rounding, which is far below one
level, so a resized pixel can land on the neighbouring level when its exact
value lies next to a rounding boundary, never further: |difference| <= 1
uint8 level (1/255 before normalization). Such ties are rare on photographs:
measured on skimage's astronaut, coffee, chelsea, rocket and camera with
timm, torchvision and open_clip preprocessing, 0 to 0.4% of values differ;
the test allows 2%, a bound on the count of near-tie pixels, not on their size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurodec.backbones import Preprocess, device_pipeline, extract_features, load
from neurodec.backbones.device_preprocessing import uint8_groups
from neurodec.backbones.preprocessing import ImagePreprocessor
from neurodec.data import Stimuli
from float32_tolerance import EPS32

skdata = pytest.importorskip("skimage.data")

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")  # camera is grayscale: RGB replication too
ONE_LEVEL = 1 / 255


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [getattr(skdata, name)() for name in PHOTOS]


def _levels(pipe, host: torch.Tensor, device: torch.Tensor) -> torch.Tensor:
    """|device - host| in [0, 1] units: undo the normalization's division by std."""
    last = pipe.transforms[-1]
    std = torch.tensor(last.std)[:, None, None] if hasattr(last, "std") else 1.0
    return (device - host).abs() * std


@pytest.mark.parametrize("name", ["timm/resnet18", "torchvision/resnet18", "open_clip", "preprocess"])
def test_device_pipeline_matches_the_pil_path_within_one_level(name, photos):
    if name == "preprocess":  # neurodec's own (transformers and neurodec sources): bilinear squash, no norm
        pre = ImagePreprocessor(Preprocess(resize=(96, 128), interpolation="bilinear", mean=None, std=None).transform())
    elif name == "open_clip":  # the eval transform create_model_and_transforms returns, without building a model
        import open_clip

        pre = ImagePreprocessor(open_clip.image_transform(224, is_train=False))
    else:
        pre = load(name, weights="random").preprocess
    pipe = device_pipeline(pre)
    for image in photos:
        host = pre(image)
        ((_, u8),) = uint8_groups([image])
        out = pipe(u8)
        assert out.dtype == torch.float32 and out.shape == (1, *host.shape)
        diff = _levels(pipe, host, out[0])
        # one level, plus float32 rounding of the normalization (values up to ~2.6 after it)
        assert float(diff.max()) <= ONE_LEVEL + 8 * EPS32
        assert float((diff > ONE_LEVEL / 2).float().mean()) <= 0.02


def test_uint8_groups_stack_per_size_and_convert_to_rgb(photos):
    gray = photos[-1][:300]  # another size than astronaut's
    images = [photos[0], gray, photos[0][:, :, ::-1].copy(), np.dstack([gray, gray, gray, gray])]
    groups = uint8_groups(images)
    assert [list(pos) for pos, _ in groups] == [[0, 2], [1, 3]]
    np.testing.assert_array_equal(groups[0][1][1].permute(1, 2, 0).numpy(), images[2])
    for x in groups[1][1]:  # grayscale replicated, RGBA's alpha dropped
        np.testing.assert_array_equal(x.numpy(), np.broadcast_to(gray, (3, *gray.shape)))


def _photo_stimuli(photos: list[np.ndarray], tmp_path) -> Stimuli:
    from PIL import Image

    paths = {}
    for i, image in enumerate(photos + photos[:2]):  # 7 images of 5 sizes: batches mix sizes
        small = Image.fromarray(image).reduce(4)  # a quarter of the side keeps the test fast
        paths[f"p{i}"] = tmp_path / f"p{i}.png"
        small.save(paths[f"p{i}"])
    return Stimuli.from_files(paths, name="photos")


@pytest.fixture(scope="module")
def small_atto():
    # A 64-pixel input keeps ConvNeXt-Atto fast; bicubic like timm's default.
    return load("timm/convnext_atto", weights="random", device="cpu",
                preprocess={"resize": 72, "crop": 64, "interpolation": "bicubic"})


@pytest.mark.parametrize("num_workers", [0, 2])
def test_device_path_features_are_the_model_on_the_device_pipeline(small_atto, photos, tmp_path, num_workers):
    stimuli = _photo_stimuli(photos, tmp_path)
    out = extract_features(small_atto, stimuli, layers=["output"], batch_size=3, preprocess_on="device",
                           num_workers=num_workers, verbose=False)["output"]
    assert out.meta["preprocess_on"] == "device"
    pipe = device_pipeline(small_atto.preprocess)
    # reference: each image through the pipeline on its own, then the model in the same batches of 3
    x = torch.cat([pipe(uint8_groups([image])[0][1]) for image in stimuli.iter_images()])
    with torch.inference_mode():
        ref = torch.cat([small_atto.model(x[b0 : b0 + 3]) for b0 in range(0, len(x), 3)]).numpy()
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(out.data, ref, rtol=0, atol=320 * 64 * EPS32 * scale)  # 320 channels x 8x8 pooled
    # and the host path: inputs within one uint8 level give features close to the PIL path's
    host = extract_features(small_atto, stimuli, layers=["output"], batch_size=3, verbose=False)["output"]
    x_host = torch.stack([small_atto.preprocess(image) for image in stimuli.iter_images()])
    rel_in = float((x - x_host).norm() / x_host.norm())
    rel_out = float(np.linalg.norm(out.data - host.data) / np.linalg.norm(host.data))
    assert 0 < rel_in < 1e-2
    # a small input perturbation moves the features by its size times the network's local gain
    # (measured 0.96 here: 7.6e-4 out for 7.9e-4 in); 10 bounds that gain, not this run's error
    assert rel_out < 10 * rel_in
    # device features are cached apart from the host path's
    assert out.meta["preprocessing"] != host.meta["preprocessing"]


def test_unsupported_steps_are_named():
    lanczos = ImagePreprocessor(Preprocess(resize=64, crop=56, interpolation="lanczos").transform())
    with pytest.raises(ValueError, match=r"step Resize\(.*lanczos.*\) cannot run on the device: interpolation "
                                         r"'lanczos' has no tensor implementation"):
        device_pipeline(lanczos)

    def processor(image):  # how a transformers snapshot's image processor is wrapped
        return torch.zeros(3, 8, 8)

    with pytest.raises(ValueError, match=r"step <function .*processor.*> cannot run on the device: function has "
                                         r"no tensor equivalent"):
        device_pipeline(ImagePreprocessor(processor))
    from neurodec._torchvision import enable_torchvision

    transforms = enable_torchvision().transforms
    with pytest.raises(ValueError, match="never converts the image to a float tensor"):
        device_pipeline(transforms.Compose([transforms.Resize(8)]))


def test_bad_preprocess_on_and_unsupported_backbone_fail_before_extraction(stimuli):
    bb = load("timm/convnext_atto", weights="random", device="cpu",
              preprocess={"resize": 40, "crop": 32, "interpolation": "box"})
    with pytest.raises(ValueError, match=r"'preprocess_on' parameter must be one of \('host', 'device'\). Got 'gpu'"):
        extract_features(bb, stimuli, preprocess_on="gpu", verbose=False)
    with pytest.raises(ValueError, match="interpolation 'box' has no tensor implementation"):
        extract_features(bb, stimuli, preprocess_on="device", verbose=False)


@pytest.mark.gpu
def test_device_path_on_cuda_stays_within_one_level_of_pil(photos, tmp_path):
    # On CUDA torchvision resizes uint8 through float32 and rounds: the same one-level bound holds.
    cpu = load("timm/convnext_atto", weights="random", device="cpu",
               preprocess={"resize": 72, "crop": 64, "interpolation": "bicubic"})
    cuda = load("timm/convnext_atto", weights="random", device="cuda",
                preprocess={"resize": 72, "crop": 64, "interpolation": "bicubic"})
    cuda.root.load_state_dict(cpu.root.state_dict())
    pipe = device_pipeline(cpu.preprocess)
    stimuli = _photo_stimuli(photos, tmp_path)
    x_host = torch.stack([cpu.preprocess(image) for image in stimuli.iter_images()])
    x = torch.cat([pipe(uint8_groups([image])[0][1].cuda()).cpu() for image in stimuli.iter_images()])
    diff = _levels(pipe, x_host, x)
    assert float(diff.max()) <= ONE_LEVEL + 8 * EPS32 and float((diff > ONE_LEVEL / 2).float().mean()) <= 0.02
    host = extract_features(cpu, stimuli, layers=["output"], batch_size=3, verbose=False)["output"]
    out = extract_features(cuda, stimuli, layers=["output"], batch_size=3, amp=False, num_workers=2,
                           preprocess_on="device", verbose=False)["output"]
    rel_in = float((x - x_host).norm() / x_host.norm())
    # the input difference's effect (gain <= 10, as on CPU) plus cuDNN's convolutions, TF32 by default
    # (10-bit mantissa: 2**-11 = 4.9e-4 relative rounding per product); allowed: 10 such units
    assert np.linalg.norm(out.data - host.data) / np.linalg.norm(host.data) < 10 * rel_in + 10 * 2**-11

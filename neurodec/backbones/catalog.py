"""Curated backbones: the field's standards and recent architectures, with their default layers.

Pure data: registering these imports nothing heavy. Each timm entry's
preprocessing mirrors the model's default pretrained config and its layers are
the modules timm's ``feature_info`` names as stages (a test checks both against
the installed timm). Any other library model is still reachable by name (see
:func:`~neurodec.backbones.registry.get_backbone_spec`).
"""

from __future__ import annotations

from .registry import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, BackboneSpec, register_backbone

__all__: list[str] = []

_MEANS = {
    "I": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet
    "H": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # Inception-style
}

# (model, default pretrained tag, input size, crop_pct, interpolation, mean/std, stage layers, description)
_TIMM = [
('resnet50', 'a1_in1k', 224, 0.95, 'bicubic', 'I', ('act1', 'layer1', 'layer2', 'layer3', 'layer4'), 'ResNet-50 (He et al. 2016), the standard convnet of encoding studies'),
    ('resnet18', 'a1_in1k', 224, 0.95, 'bicubic', 'I', ('act1', 'layer1', 'layer2', 'layer3', 'layer4'), 'ResNet-18 (He et al. 2016)'),
    ('convnext_atto', 'd2_in1k', 224, 0.875, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'ConvNeXt-Atto (Liu et al. 2022; timm variant)'),
    ('convnext_tiny', 'in12k_ft_in1k', 224, 0.95, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'ConvNeXt-T (Liu et al. 2022)'),
    ('inception_next_tiny', 'sail_in1k', 224, 0.875, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'InceptionNeXt-T (Yu et al. 2024)'),
    ('nextvit_small', 'bd_in1k', 224, 0.95, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'Next-ViT-S (Li et al. 2022)'),
    ('convit_tiny', 'fb_in1k', 224, 0.875, 'bicubic', 'I', ('blocks.0', 'blocks.1', 'blocks.2', 'blocks.3', 'blocks.4', 'blocks.5', 'blocks.6', 'blocks.7', 'blocks.8', 'blocks.9', 'blocks.10', 'blocks.11'), "ConViT-Ti (d'Ascoli et al. 2021)"),
    ('ghostnetv2_100', 'in1k', 224, 0.875, 'bicubic', 'I', ('conv_stem', 'blocks.1', 'blocks.3', 'blocks.5', 'blocks.7'), 'GhostNetV2 1.0x (Tang et al. 2022)'),
    ('crossvit_9_240', 'in1k', 240, 0.875, 'bicubic', 'I', ('blocks.0', 'blocks.1', 'blocks.2'), 'CrossViT-9 (Chen et al. 2021); blocks output two token branches'),
    ('tnt_s_patch16_224', 'in1k', 224, 0.9, 'bicubic', 'H', ('blocks.0', 'blocks.1', 'blocks.2', 'blocks.3', 'blocks.4', 'blocks.5', 'blocks.6', 'blocks.7', 'blocks.8', 'blocks.9', 'blocks.10', 'blocks.11'), 'TNT-S (Han et al. 2021)'),
    ('fasternet_t0', 'in1k', 224, 1.0, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'FasterNet-T0 (Chen et al. 2023)'),
    ('maxvit_tiny_tf_224', 'in1k', 224, 0.95, 'bicubic', 'I', ('stem', 'stages.0', 'stages.1', 'stages.2', 'stages.3'), 'MaxViT-T (Tu et al. 2022)'),
    ('repvit_m0_9', 'dist_300e_in1k', 224, 0.95, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'RepViT-M0.9 (Wang et al. 2024)'),
    ('efficientformer_l1', 'snap_dist_in1k', 224, 0.95, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'EfficientFormer-L1 (Li et al. 2022)'),
    ('efficientformerv2_s0', 'snap_dist_in1k', 224, 0.95, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'EfficientFormerV2-S0 (Li et al. 2023)'),
    ('poolformer_s12', 'sail_in1k', 224, 0.9, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'PoolFormer-S12 (Yu et al. 2022)'),
    ('caformer_s18', 'sail_in1k', 224, 1.0, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'CAFormer-S18 (Yu et al. 2023)'),
    ('convformer_s18', 'sail_in1k', 224, 1.0, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'ConvFormer-S18 (Yu et al. 2023)'),
    ('vit_small_patch14_dinov2', 'lvd142m', 518, 1.0, 'bicubic', 'I', ('blocks.0', 'blocks.1', 'blocks.2', 'blocks.3', 'blocks.4', 'blocks.5', 'blocks.6', 'blocks.7', 'blocks.8', 'blocks.9', 'blocks.10', 'blocks.11'), 'DINOv2 ViT-S/14 (Oquab et al. 2023)'),
    ('vit_base_patch14_dinov2', 'lvd142m', 518, 1.0, 'bicubic', 'I', ('blocks.0', 'blocks.1', 'blocks.2', 'blocks.3', 'blocks.4', 'blocks.5', 'blocks.6', 'blocks.7', 'blocks.8', 'blocks.9', 'blocks.10', 'blocks.11'), 'DINOv2 ViT-B/14 (Oquab et al. 2023)'),
    ('vit_small_patch14_reg4_dinov2', 'lvd142m', 518, 1.0, 'bicubic', 'I', ('blocks.0', 'blocks.1', 'blocks.2', 'blocks.3', 'blocks.4', 'blocks.5', 'blocks.6', 'blocks.7', 'blocks.8', 'blocks.9', 'blocks.10', 'blocks.11'), 'DINOv2 ViT-S/14 with 4 registers (Darcet et al. 2024)'),
    ('vit_base_patch16_224', 'augreg2_in21k_ft_in1k', 224, 0.9, 'bicubic', 'H', ('blocks.0', 'blocks.1', 'blocks.2', 'blocks.3', 'blocks.4', 'blocks.5', 'blocks.6', 'blocks.7', 'blocks.8', 'blocks.9', 'blocks.10', 'blocks.11'), 'ViT-B/16 (Dosovitskiy et al. 2021; AugReg weights)'),
    ('deit_tiny_patch16_224', 'fb_in1k', 224, 0.9, 'bicubic', 'I', ('blocks.0', 'blocks.1', 'blocks.2', 'blocks.3', 'blocks.4', 'blocks.5', 'blocks.6', 'blocks.7', 'blocks.8', 'blocks.9', 'blocks.10', 'blocks.11'), 'DeiT-Ti (Touvron et al. 2021)'),
    ('swin_tiny_patch4_window7_224', 'ms_in1k', 224, 0.9, 'bicubic', 'I', ('layers.0', 'layers.1', 'layers.2', 'layers.3'), 'Swin-T (Liu et al. 2021)'),
    ('efficientnet_b0', 'ra_in1k', 224, 0.875, 'bicubic', 'I', ('blocks.0', 'blocks.1', 'blocks.2', 'blocks.4', 'blocks.6'), 'EfficientNet-B0 (Tan & Le 2019)'),
    ('vgg16', 'tv_in1k', 224, 0.875, 'bilinear', 'I', ('features.3', 'features.8', 'features.15', 'features.22', 'features.29', 'features.30'), 'VGG-16 (Simonyan & Zisserman 2015; torchvision weights)'),
    ('densenet121', 'ra_in1k', 224, 0.875, 'bicubic', 'I', ('features.norm0', 'features.denseblock1', 'features.denseblock2', 'features.denseblock3', 'features.norm5'), 'DenseNet-121 (Huang et al. 2017)'),
    ('hiera_tiny_224', 'mae_in1k_ft_in1k', 224, 0.9, 'bicubic', 'I', ('blocks.0', 'blocks.2', 'blocks.9', 'blocks.11'), 'Hiera-T (Ryali et al. 2023)'),
    ('mambaout_femto', 'in1k', 224, 1.0, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'MambaOut-Femto (Yu & Wang 2024)'),
    ('starnet_s1', 'in1k', 224, 0.875, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'StarNet-S1 (Ma et al. 2024)'),
    ('fastvit_t8', 'apple_in1k', 256, 0.9, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'FastViT-T8 (Vasu et al. 2023)'),
    ('levit_128s', 'fb_dist_in1k', 224, 0.9, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2'), 'LeViT-128S (Graham et al. 2021)'),
    ('efficientvit_b0', 'r224_in1k', 224, 0.95, 'bicubic', 'I', ('stages.0', 'stages.1', 'stages.2', 'stages.3'), 'EfficientViT-B0 (Cai et al. 2023)'),
    ('coatnet_0_rw_224', 'sw_in1k', 224, 0.95, 'bicubic', 'H', ('stem', 'stages.0', 'stages.1', 'stages.2', 'stages.3'), 'CoAtNet-0 (Dai et al. 2021; timm variant)'),
    ('regnety_008', 'pycls_in1k', 224, 0.875, 'bicubic', 'I', ('stem', 's1', 's2', 's3', 's4'), 'RegNetY-800MF (Radosavovic et al. 2020)'),
    ('mobilenetv3_large_100', 'ra_in1k', 224, 0.875, 'bicubic', 'I', ('blocks.0', 'blocks.1', 'blocks.2', 'blocks.4', 'blocks.6'), 'MobileNetV3-Large (Howard et al. 2019)'),
]

for _model, _tag, _size, _crop, _interp, _norm, _layers, _desc in _TIMM:
    register_backbone(
        BackboneSpec(
            name=f"timm/{_model}", source="timm", model_id=_model, pretrained=_tag, input_size=_size,
            mean=_MEANS[_norm][0], std=_MEANS[_norm][1], interpolation=_interp, crop_pct=_crop,
            layers=_layers, description=_desc,
        )
    )

# torchvision classics used by the field's image metrics (weights enum names as tags).
_TORCHVISION = [
    ("alexnet", "IMAGENET1K_V1", 224, 256, ("features.1", "features.4", "features.7", "features.9", "features.11", "classifier.5"),
     "AlexNet (Krizhevsky et al. 2012); layers 2 and 5 (features.4, features.11) score reconstructions"),
    ("resnet50", "IMAGENET1K_V1", 224, 256, ("layer1", "layer2", "layer3", "layer4", "avgpool"),
     "ResNet-50 (He et al. 2016), torchvision weights"),
    ("inception_v3", "IMAGENET1K_V1", 299, 342, ("Mixed_5d", "Mixed_6e", "Mixed_7c", "avgpool"),
     "Inception-v3 (Szegedy et al. 2016); avgpool is the two-way identification metric's layer"),
    ("efficientnet_b1", "IMAGENET1K_V1", 240, 255, ("features.2", "features.4", "features.6", "avgpool"),
     "EfficientNet-B1 (Tan & Le 2019); avgpool is the reconstruction metric's layer"),
]

for _model, _tag, _crop_size, _resize, _layers, _desc in _TORCHVISION:
    register_backbone(
        BackboneSpec(
            name=f"torchvision/{_model}", source="torchvision", model_id=_model, pretrained=_tag,
            input_size=_crop_size, interpolation="bilinear", crop_pct=_crop_size / _resize, layers=_layers,
            license="bsd-3-clause", description=_desc,
        )
    )

# open_clip: the image tower; "output" is the projected image embedding.
_OPEN_CLIP = [
    ("ViT-B-32", "laion2b_s34b_b79k", 12, "CLIP ViT-B/32 trained on LAION-2B (Cherti et al. 2023)"),
    ("ViT-B-32", "openai", 12, "OpenAI CLIP ViT-B/32 (Radford et al. 2021)"),
    ("ViT-B-16", "openai", 12, "OpenAI CLIP ViT-B/16 (Radford et al. 2021)"),
    ("ViT-L-14", "openai", 24, "OpenAI CLIP ViT-L/14 (Radford et al. 2021); the field's CLIP metric"),
    ("ViT-H-14", "laion2b_s32b_b79k", 32, "OpenCLIP ViT-H/14 on LAION-2B (unCLIP / Versatile Diffusion image encoder)"),
]

for _model, _tag, _depth, _desc in _OPEN_CLIP:
    _blocks = tuple(f"transformer.resblocks.{i}" for i in range(_depth // 4 - 1, _depth, _depth // 4))
    register_backbone(
        BackboneSpec(
            name=f"open_clip/{_model}:{_tag}", source="open_clip", model_id=_model, pretrained=_tag,
            mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, crop_pct=1.0, layers=(*_blocks, "output"),
            description=_desc,
        )
    )

# transformers: hub ids; weights="pretrained" needs the hub (or its cache), or
# pass a local snapshot folder as weights.
_DINO_LAYERS = tuple(f"encoder.layer.{i}" for i in range(12))
_CLIP_LAYERS = tuple(f"encoder.layers.{i}" for i in range(12))
for _spec in (
    BackboneSpec(
        name="transformers/facebook/dinov2-small", source="transformers", model_id="facebook/dinov2-small",
        pretrained="facebook/dinov2-small", model_class="Dinov2Model", layers=_DINO_LAYERS,
        license="apache-2.0", description="DINOv2 ViT-S/14 (Oquab et al. 2023)",
    ),
    BackboneSpec(
        name="transformers/facebook/dinov2-base", source="transformers", model_id="facebook/dinov2-base",
        pretrained="facebook/dinov2-base", model_class="Dinov2Model", layers=_DINO_LAYERS,
        license="apache-2.0", description="DINOv2 ViT-B/14 (Oquab et al. 2023)",
    ),
    BackboneSpec(
        name="transformers/microsoft/git-base", source="transformers", model_id="microsoft/git-base",
        pretrained="microsoft/git-base", model_class="GitForCausalLM", submodule="git.image_encoder",
        mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, crop_pct=1.0,
        layers=tuple(f"vision_model.{name}" for name in _CLIP_LAYERS), license="mit",
        description="GIT-base image encoder (Wang et al. 2022), the captioner's vision tower",
    ),
    BackboneSpec(
        name="transformers/Salesforce/blip-image-captioning-base", source="transformers",
        model_id="Salesforce/blip-image-captioning-base", pretrained="Salesforce/blip-image-captioning-base",
        model_class="BlipForConditionalGeneration", submodule="vision_model", input_size=384,
        mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, crop_pct=1.0, resize_mode="squash",
        layers=_CLIP_LAYERS, license="bsd-3-clause", description="BLIP-base captioner's ViT-B/16 (Li et al. 2022)",
    ),
):
    register_backbone(_spec)

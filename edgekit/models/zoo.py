"""The registered zoo: each variant is a row of family parameters (no per-variant code)."""

from __future__ import annotations

from . import baselines, efficientnet, mobilenet
from .registry import ModelSpec, register, with_params

MOBILENET_V1 = register(ModelSpec(
    "mobilenet_v1", "mobilenet_v1", mobilenet.build_mobilenet_v1, 224, 32,
    params={"alpha": 1.0, "depth_multiplier": 1}, keras_weights=True,
    reference="Howard et al. 2017, arXiv:1704.04861"))
MOBILENET_V2 = register(ModelSpec(
    "mobilenet_v2", "mobilenet_v2", mobilenet.build_mobilenet_v2, 224, 32,
    params={"alpha": 1.0, "expansion": 6}, keras_weights=True,
    reference="Sandler et al. 2018, arXiv:1801.04381"))

_EFFNET = ModelSpec("efficientnet", "efficientnet", efficientnet.build_efficientnet, 224, 32,
                    params={"width": 1.0, "depth": 1.0, "resolution": 224, "dropout": 0.2,
                            "drop_connect": 0.2},
                    mean=0.0, std=1.0, keras_weights=True)
for _b, (_w, _d, _r, _p) in efficientnet.B_VARIANTS.items():
    register(with_params(_EFFNET, f"efficientnet_b{_b}", "Tan & Le 2019, arXiv:1905.11946",
                         width=_w, depth=_d, resolution=_r, dropout=_p))

_LITE = ModelSpec("efficientnet_lite", "efficientnet_lite", efficientnet.build_efficientnet,
                  224, 32, params={"width": 1.0, "depth": 1.0, "resolution": 224,
                                   "dropout": 0.2, "drop_connect": 0.2, "lite": True})
for _b, (_w, _d, _r, _p) in efficientnet.LITE_VARIANTS.items():
    register(with_params(_LITE, f"efficientnet_lite{_b}", "TF TPU repo, EfficientNet-Lite (2020)",
                         width=_w, depth=_d, resolution=_r, dropout=_p))

register(ModelSpec("lenet5", "lenet5", baselines.build_lenet5, 32, 32, default_channels=1,
                   reference="LeCun et al. 1998"))
register(ModelSpec("alexnet", "alexnet", baselines.build_alexnet, 227, 67,
                   reference="Krizhevsky et al. 2012"))
register(ModelSpec("vgg16", "vgg16", baselines.build_vgg16, 224, 32,
                   reference="Simonyan & Zisserman 2014 (keras.applications.VGG16)"))
register(ModelSpec("resnet50", "resnet50", baselines.build_resnet50, 224, 32,
                   reference="He et al. 2015 (keras.applications.ResNet50)"))
register(ModelSpec("inception_v3", "inception_v3", baselines.build_inception_v3, 299, 75,
                   reference="Szegedy et al. 2015 (keras.applications.InceptionV3)"))

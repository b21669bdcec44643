"""``edgekit evaluate``: accuracy, per-class accuracy, confusion matrix and top-1 agreement of a
trained model (run folder, .keras file) or of what ``edgekit export`` ships (.tflite, .onnx,
.ort files, run through ``edgekit.runtime``), with multi-crop test-time augmentation
(Krizhevsky et al. 2012, section 4.1) and ensembles.

The package imports numpy, Pillow, ``edgekit.runtime`` and the TensorFlow-free part of
``edgekit.data`` (the sources); TensorFlow and Keras only when a run folder or a .keras file
is evaluated, so exported files are evaluated on the device install.
"""

from .evaluate import EXPECTED, Scorer, evaluate, load_model, needs_tensorflow
from .files import FileModel, is_model_file
from .metrics import agreement, confusion, scores
from .tta import CROP_ENLARGE, TTA_MODES, Tta, crop_offsets, enlarged_size, views

__all__ = [
    "CROP_ENLARGE", "EXPECTED", "FileModel", "Scorer", "TTA_MODES", "Tta", "agreement", "confusion",
    "crop_offsets", "enlarged_size", "evaluate", "is_model_file", "load_model", "needs_tensorflow", "scores",
    "views",
]

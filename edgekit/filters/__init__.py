"""What a network's first layer learned: its convolution kernels beside the hand-made edge
filters (vertical/horizontal edge, Sobel, Scharr and their 45-degree turns), with each
kernel's best match, dead and duplicate kernels flagged, and response maps on an image.

``filter_report(model, "filters.png")`` reads the first 2-D convolution of a run folder,
.keras, .tflite or .onnx file (:mod:`readers`), compares it (:mod:`analysis`, with the filters
of :mod:`reference`) and draws the picture (:mod:`plot`). The analysis needs numpy only and
.tflite/.onnx weights are read from the file's bytes, so it runs on the device; matplotlib is
imported only to draw, Keras only for .keras files.
"""

from .analysis import ConvKernels, KernelMatch, match_kernels, response_maps, similarity
from .readers import read_conv
from .reference import REFERENCES, correlate2d, notes_example, reference_filters, resize_kernel, rotate45
from .report import FilterReport, filter_report

__all__ = ["ConvKernels", "FilterReport", "KernelMatch", "REFERENCES", "correlate2d", "filter_report",
           "match_kernels", "notes_example", "read_conv", "reference_filters", "resize_kernel",
           "response_maps", "rotate45", "similarity"]

"""edgekit: build, train, quantize, export, profile and run small image CNNs on devices.

Importing ``edgekit`` is cheap and imports no TensorFlow: the heavy layers
(``edgekit.models``, ``edgekit.data``, ``edgekit.train``, ``edgekit.export``) are imported
by name, and ``edgekit.runtime`` needs numpy and an inference backend only.
"""

__version__ = "0.1.0"

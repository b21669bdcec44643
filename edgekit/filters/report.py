"""``filter_report``: read a model's first convolution, match its kernels with the reference
filters, optionally run them on an image, and write the picture; the one call behind
``edgekit filters``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .analysis import (ConvKernels, KernelMatch, chance_similarity, match_kernels, most_edge_like, prepare_image,
                       response_maps, shown_kernels)
from .readers import read_conv
from .reference import reference_filters

SCHEMA = "edgekit.filters/1"
RESPONSES = 6  # learned kernels shown acting on --image


@dataclass
class FilterReport:
    model: str
    conv: ConvKernels
    channel: int | None  # the input channel shown and matched; None: the mean over channels
    matches: list[KernelMatch]
    chance: float
    picture: Path | None = None
    image: str | None = None
    responses: list[str] = field(default_factory=list)

    @property
    def strided(self) -> bool:
        return self.conv.stride != (1, 1)

    def summary(self) -> dict:
        live = [m for m in self.matches if not m.dead]
        return {"kernels": len(self.matches), "dead": sum(m.dead for m in self.matches),
                "duplicates": sum(m.duplicate_of is not None for m in self.matches),
                "mean_cosine": round(float(np.mean([m.cosine for m in live])), 4) if live else None,
                "chance_cosine": round(self.chance, 4)}

    def as_dict(self) -> dict:
        c = self.conv
        return {"schema": SCHEMA, "model": self.model, "format": c.source, "layer": c.name,
                "depthwise": c.depthwise, "kernel_size": list(c.kernel_size), "stride": list(c.stride),
                "in_channels": c.in_channels, "out_channels": c.count, "storage": c.storage,
                "shown": "mean over input channels" if self.channel is None and c.in_channels > 1
                else f"input channel {self.channel or 0}",
                "summary": self.summary(), "kernels": [m.as_dict() for m in self.matches],
                "picture": None if self.picture is None else str(self.picture), "image": self.image,
                "responses": self.responses}


def _title(report: FilterReport, model: str) -> str:
    c = report.conv
    kh, kw = c.kernel_size
    what = "depthwise " if c.depthwise else ""
    stride = f", stride {c.stride[0]}x{c.stride[1]}" if report.strided else ""
    shown = ("" if c.in_channels == 1 else f", mean of {c.in_channels} input channels" if report.channel is None
             else f", input channel {report.channel}")
    s = report.summary()
    return (f"{Path(model).name}: {what}{c.name}, {c.count} kernels {kh}x{kw}x{c.in_channels}{stride}{shown} "
            f"({c.storage}); best |cos| with a reference: mean {s['mean_cosine']} (random kernels: "
            f"{s['chance_cosine']}); {s['dead']} dead, {s['duplicates']} duplicate")


def filter_report(model: str | os.PathLike, out_png: str | os.PathLike | None, layer: str | None = None,
                  image: str | os.PathLike | None = None, channel: int | None = None) -> FilterReport:
    """Analyse MODEL's first 2-D convolution (or ``layer``) and write the picture to
    ``out_png`` (None: no picture). Everything is read and checked before the picture is
    written, so bad input leaves no file behind. ValueError for bad input."""
    conv = read_conv(model, layer)
    matches = match_kernels(conv, channel)
    report = FilterReport(str(model), conv, channel, matches, chance_similarity(conv.kernel_size))
    pixels = responses = None
    if image is not None:
        from edgekit.runtime import load_image

        pixels = load_image(image, channels=3)
        responses = response_maps(pixels, conv, most_edge_like(matches, RESPONSES))
        report.image, report.responses = str(image), [name for name, _ in responses]
    if out_png is not None:
        from .plot import draw, save_png

        prepared = None if pixels is None else prepare_image(pixels, 1 if conv.in_channels != 3 else 3)
        fig = draw(conv, shown_kernels(conv, channel), matches, reference_filters(conv.kernel_size),
                   _title(report, str(model)), responses, prepared)
        report.picture = save_png(fig, out_png)
    return report

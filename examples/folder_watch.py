"""Watch a folder and classify every new image with an exported edgekit model.

An application embedding ``edgekit.runtime`` as a device would: it needs the standard library,
edgekit's runtime (numpy and LiteRT or onnxruntime) and Pillow to read the images, and no
TensorFlow. The folder is polled (``os.scandir`` every ``--interval`` seconds) rather than
watched with inotify, so it works the same on Linux, macOS, SD cards and network shares.

A file is classified once when it is new or has changed: images present at start-up at
once, later ones when their size and modification time are the same on two polls in a row,
so that a file still being written is not read half-way. Each frame is one line on stdout,
``PATH  LABEL PROB[, LABEL PROB...]  (MS ms)``, or one JSON object with ``--json-lines``; an
image that cannot be read is reported on stderr and skipped (with ``--once`` the exit status
is then 1). A model that cannot be loaded, or has no edgekit metadata, exits 2.

    python examples/folder_watch.py MODEL FOLDER [--once] [--json-lines] [--top-k K]
        [--interval SECONDS] [--recursive] [--threads N]

See examples/README.md for a command sequence that works on a fresh clone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.runtime import Model, RuntimeModelError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
Signature = tuple[int, int]  # (size in bytes, modification time in ns)


def scan(folder: Path, recursive: bool) -> dict[Path, Signature]:
    """Image files under ``folder`` (hidden files skipped) and their current signatures."""
    found: dict[Path, Signature] = {}
    stack = [folder]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:  # a folder removed while we looked
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    if recursive:
                        stack.append(Path(entry.path))
                elif entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                    stat = entry.stat()
                    found[Path(entry.path)] = (stat.st_size, stat.st_mtime_ns)
            except OSError:  # a file removed between listing and stat
                continue
    return found


@dataclass
class Watcher:
    """Decides which files are ready to classify, one poll at a time."""

    folder: Path
    recursive: bool = False
    done: dict[Path, Signature] = field(default_factory=dict)  # what was classified, as it was then
    last: dict[Path, Signature] | None = None  # the previous poll; None before the first

    def poll(self) -> list[Path]:
        now = scan(self.folder, self.recursive)
        previous = now if self.last is None else self.last  # at start-up, what is there has settled
        ready = sorted(p for p, sig in now.items() if self.done.get(p) != sig and previous.get(p) == sig)
        self.last = now
        self.done = {p: sig for p, sig in self.done.items() if p in now}  # forget deleted files
        self.done.update((p, now[p]) for p in ready)
        return ready


def classify(model: Model, path: Path, top_k: int) -> dict:
    start = time.perf_counter()
    ranked = model.classify(path, top_k=top_k)
    ms = (time.perf_counter() - start) * 1e3
    return {"image": str(path), "top_k": [{"label": label, "probability": round(p, 6)} for label, p in ranked],
            "ms": round(ms, 3)}


def format_line(result: dict) -> str:
    ranked = ", ".join(f"{r['label']} {r['probability']:.3f}" for r in result["top_k"])
    return f"{result['image']}  {ranked}  ({result['ms']:.1f} ms)"


def process(model: Model, paths: list[Path], top_k: int, json_lines: bool) -> int:
    """Classify ``paths``, one line each; returns how many could not be read."""
    failed = 0
    for path in paths:
        try:
            result = classify(model, path, top_k)
        except RuntimeModelError as exc:  # unreadable or vanished image: report, keep watching
            print(f"folder_watch: skipped {path}: {exc}", file=sys.stderr, flush=True)
            failed += 1
            continue
        print(json.dumps(result) if json_lines else format_line(result), flush=True)
    return failed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an exported .tflite or .onnx file with edgekit metadata")
    parser.add_argument("folder", type=Path, help="the folder to watch")
    parser.add_argument("--once", action="store_true", help="classify the images there now, then exit")
    parser.add_argument("--json-lines", action="store_true", help="one JSON object per image")
    parser.add_argument("--top-k", type=int, default=1, help="classes per image (default 1)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between polls (default 0.5)")
    parser.add_argument("--recursive", action="store_true", help="also watch sub-folders")
    parser.add_argument("--threads", type=int, default=None, help="inference threads (default: the backend's)")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k got {args.top_k}; expected a positive integer")
    if args.interval <= 0:
        parser.error(f"--interval got {args.interval}; expected a positive number of seconds")
    if not args.folder.is_dir():
        parser.error(f"folder {str(args.folder)!r} does not exist or is not a folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model = Model(args.model, threads=args.threads)
        if model.metadata is None:  # classify needs it: fail now rather than at the first frame
            raise RuntimeModelError(f"{str(args.model)!r} has no edgekit metadata; export it with 'edgekit export'")
    except RuntimeModelError as exc:
        print(f"folder_watch: error: {exc}", file=sys.stderr)
        return 2
    watcher = Watcher(args.folder, args.recursive)
    if args.once:
        return 1 if process(model, watcher.poll(), args.top_k, args.json_lines) else 0
    print(f"folder_watch: watching {args.folder} with {args.model} ({model.backend}); Ctrl-C stops",
          file=sys.stderr, flush=True)
    try:
        while True:
            process(model, watcher.poll(), args.top_k, args.json_lines)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

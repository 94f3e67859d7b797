"""The layout of a run folder: every file ``sparsenet train`` writes there, and what it holds.

::

    config.json     {"config": TrainConfig fields, "data": the shards' description,
                     "versions": {python, torch, spconv, numpy, sparsenet}, "command": argv}
    metrics.jsonl   one JSON object per finished epoch: epoch, lr, train/test loss and error,
                    test top-5 error, seconds, samples_per_s, procs, profile (seconds per stage)
    curves.png      loss and error per epoch (from metrics.jsonl)
    confusion.png   test-set confusion matrix of the best epoch so far
    checkpoint.pt   the state after the last finished epoch (epoch 0: the initial weights);
                    ``sparsenet train --resume`` continues from it (sparsenet.checkpoint)
    best.pt         the checkpoint of the epoch with the lowest test error
    eval.txt        written by the make targets: ``sparsenet eval`` of checkpoint.pt

Every file is replaced atomically (a temporary file beside it, then a rename), the
checkpoint first, so an interrupted run holds one consistent state.
"""

CONFIG_JSON = "config.json"
METRICS = "metrics.jsonl"
CURVES = "curves.png"
CONFUSION = "confusion.png"
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
EVAL = "eval.txt"

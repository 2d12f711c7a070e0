"""Run the official M3oE code (MDMTRec) on bench/multidomain.py's split (issue 33).

Needs Python 3.11 with torch (not the repo's venv) and a copy of the official repository
Applied-Machine-Learning-Lab/M3oE at commit 1b30217477836cac8f9bb68329a91e1c805aa4f5:

    .venv/bin/python -m bench.official.m3oe_export --out /work/official/data/m3oe_ml100k.csv
    /work/official/venv-m3oe/bin/python bench/official/m3oe_run.py --official /work/official/M3oE \
        --data /work/official/data/m3oe_ml100k.csv --seeds 0 1 2 --out /work/official/out/m3oe_official.json

The model, trainer, data loader and early stopping are the official ones, built as
``examples/run_movielens.py`` builds them (its defaults: lr 1e-2, structure lr 1e-3, batch 40960,
weight decay 1e-5, embedding 16, fcn_dims [512, 256, 256, 64], 4 experts, 50 epochs, patience 10
on the mean validation AUC). What this runner changes: the rows (our export instead of ML-1M),
``device="cpu"``, DataLoader workers 0 (2 cores), and it records the validation AUC of each epoch
(a subclass of the official EarlyStopper that only logs). ``--batch-size``, ``--learning-rate``,
``--embed-dim`` and ``--epochs`` override the official values (for the runs with tfmtl's settings).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time

import numpy as np
import pandas as pd

FEATURES = ["user_id", "movie_id", "gender", "age", "occupation", "zip", "cate_id", "domain_indicator"]
DENSE = ["age"]
LABELS = ["click", "like"]
OFFICIAL_DEFAULTS = dict(learning_rate=1e-2, learning_rate_darts=1e-3, batch_size=4096 * 10, weight_decay=1e-5,
                         embed_dim=16, epochs=50, patience=10, expert_num=4, fcn_dims=[512, 256, 256, 64])


def run_seed(official: str, frame: pd.DataFrame, seed: int, settings: dict) -> dict:
    """Train and score the official MDMTRec once; per-domain/task test AUC at the best validation epoch."""
    import torch
    from MDMTRec.basic.callback import EarlyStopper
    from MDMTRec.basic.features import DenseFeature, SparseFeature
    from MDMTRec.models.multi_domain import MDMTRec
    from MDMTRec.trainers import CTRTrainer
    from MDMTRec.utils.data import DataGenerator

    class LoggingStopper(EarlyStopper):
        """The official stopper, plus a log of the validation AUC per epoch."""

        def __init__(self, patience):
            super().__init__(patience)
            self.history = []

        def stop_training(self, val_auc, weights):
            self.history.append(float(val_auc))
            return super().stop_training(val_auc, weights)

    # examples/run_movielens.py: setup_seed
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    parts = {name: frame[frame["split"] == name] for name in ("train", "validation", "test")}
    x = {name: part[FEATURES].to_numpy(np.float64) for name, part in parts.items()}
    y = {name: part[LABELS].to_numpy(np.int64) for name, part in parts.items()}
    dense = [DenseFeature(FEATURES.index(name)) for name in DENSE]
    sparse = [SparseFeature(FEATURES.index(name), vocab_size=int(frame[name].nunique()),
                            embed_dim=settings["embed_dim"]) for name in FEATURES if name not in DENSE]
    loaders = DataGenerator(x["train"], y["train"]).generate_dataloader(
        x_val=x["validation"], y_val=y["validation"], x_test=x["test"], y_test=y["test"],
        batch_size=settings["batch_size"], num_workers=0)
    model = MDMTRec(dense + sparse, domain_num=3, task_num=2, fcn_dims=settings["fcn_dims"],
                    expert_num=settings["expert_num"], exp_d=1, exp_t=1, bal_d=1, bal_t=1)
    with tempfile.TemporaryDirectory() as model_dir:
        trainer = CTRTrainer(model, optimizer_params={"lr": settings["learning_rate"],
                                                      "weight_decay": settings["weight_decay"]},
                             optimizer_params_darts={"lr": settings["learning_rate_darts"],
                                                     "weight_decay": settings["weight_decay"]},
                             n_epoch=settings["epochs"], earlystop_patience=settings["patience"], device="cpu",
                             model_path=model_dir + "/")
        trainer.early_stopper = LoggingStopper(settings["patience"])
        started = time.time()
        trainer.fit(loaders[0], val_dataloader=loaders[1], exp_d=1, exp_t=1, bal_d=1, bal_t=1,
                    domain_num=3, task_num=2)
        seconds = time.time() - started
    _, auc_list, _, total_auc = trainer.evaluate_multi_domain(trainer.model, loaders[2], 3, task_num=2)
    history = trainer.early_stopper.history
    best_epoch = int(np.argmax(history))
    domains = ["<25", "25-34", "35+"]
    # auc_list is task-major: t0d0, t0d1, t0d2, t1d0, ... (ctr_trainer.py evaluate_multi_domain)
    auc = {d: {"like": auc_list[i], "love": auc_list[3 + i]} for i, d in enumerate(domains)}
    return {"valid_auc_by_epoch": history, "best_epoch": best_epoch, "epochs_run": len(history),
            "converged": len(history) < settings["epochs"], "auc": auc, "mean_auc": float(np.mean(auc_list)),
            "pooled_auc": float(total_auc), "train_seconds": seconds, "load": os.getloadavg()[0],
            "structure": {name: float(getattr(model, "_weight_" + name)().item())
                          for name in ("exp_d", "exp_t", "bal_d", "bal_t")}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, help="path of the official M3oE checkout")
    parser.add_argument("--data", required=True, help="CSV written by bench.official.m3oe_export")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", required=True, help="JSON path for the per-seed results")
    for name in ("batch_size", "epochs", "embed_dim"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=OFFICIAL_DEFAULTS[name])
    parser.add_argument("--learning-rate", type=float, default=OFFICIAL_DEFAULTS["learning_rate"])
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.official, "MDMTRec")):
        parser.error(f"--official: {args.official!r} has no MDMTRec/ folder (a copy of the official M3oE repo)")
    sys.path.insert(0, os.path.abspath(args.official))
    frame = pd.read_csv(args.data)
    settings = dict(OFFICIAL_DEFAULTS, batch_size=args.batch_size, epochs=args.epochs, embed_dim=args.embed_dim,
                    learning_rate=args.learning_rate)
    results = {"settings": settings, "runs": {}}
    for seed in args.seeds:
        results["runs"][str(seed)] = run_seed(args.official, frame, seed, settings)
        info = results["runs"][str(seed)]
        print(f"seed {seed}: mean AUC {info['mean_auc']:.4f} best epoch {info['best_epoch']} of "
              f"{info['epochs_run']} ({info['train_seconds']:.0f}s)", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()

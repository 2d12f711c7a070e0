"""torch-rechub's multi-task models on the census task (issue #8, peer benchmark).

Runs inside bench/peers/.venv-rechub (see setup_env.sh): torch-rechub 0.9.0 on
CPU torch 2.13.0, Python 3.11.

Example (smoke test)::

    bench/peers/.venv-rechub/bin/python -m bench.peers.run_rechub --rows 20000 --epochs 1

Models and their config (defaults; flags in common.py):

* shared_bottom: ``SharedBottom(bottom_params={"dims": [512, 256]}, tower_params_list=[{"dims": [128]}] * 2)``
* mmoe: ``MMOE(n_expert=8, expert_params={"dims": [512, 256]}, tower_params_list=[{"dims": [128]}] * 2)``
  (gate = Linear -> BatchNorm -> softmax on the input, torch-rechub's fixed gate)
* ple: ``PLE(n_level=1, n_expert_specific=4, n_expert_shared=4, expert_params={"dims": [512, 256]},
  tower_params_list=[{"dims": [128]}] * 2)``
* esmm: ``ESMM(cvr_params={"dims": [512, 256, 128]}, ctr_params={"dims": [512, 256, 128]})``: two towers on
  the shared embeddings, no shared bottom. It needs a funnel: the trainer takes labels (cvr, ctr, ctcvr) and
  trains on ctr and ctcvr = ctr * cvr only. Census has none, so ctr = income_50k, cvr = never_married,
  ctcvr = income_50k AND never_married; test AUCs: income_50k from the ctr output, never_married from the
  cvr output, plus ctcvr. torch-rechub's ESMM takes embedded categorical features only (its tower input is
  n_features * embed_dim, dense features do not fit), so for ESMM alone the 7 numeric features enter as 16
  train-quantile buckets each (census_data.bucketize_numeric), embedded like the other fields.

All: embedding dim 4 (torch-rechub's default init RandomNormal(0, 1e-4)); every torch-rechub MLP layer is
Linear -> BatchNorm1d -> ReLU -> Dropout(0) (batch norm cannot be switched off); towers end in Linear(., 1) +
sigmoid. Training: the library's ``MTLTrainer.train_one_epoch`` with Adam(lr, weight_decay=0) (its default
weight decay 1e-5 is switched off so that every library trains with plain Adam) on the mean of the two BCE
losses (ESMM: sum of the ctr and ctcvr losses, the trainer's rule), batch 256 through the library's
``DataGenerator`` / ``TorchDataset`` loader (shuffled, ``num_workers=0``, its default).
"""

from __future__ import annotations

import os
import time

from bench.peers import census_data, common

LIBRARY = "torch-rechub"
ESMM_NUMERIC_BUCKETS = 16


class _ClockedLoader:
    """Wraps a DataLoader: ticks the step clock each time the trainer asks for the next batch."""

    def __init__(self, loader, clock):
        self.loader, self.clock = loader, clock

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.clock.start_epoch()
        for batch in self.loader:
            yield batch
            self.clock.tick()


def run_one(name: str, args, threads: dict) -> dict:
    os.environ.setdefault("TQDM_DISABLE", "1")
    t_start, phases = time.perf_counter(), common.Phases()
    import random

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.inter_op_threads)
    import torch_rechub
    from torch.utils.data import DataLoader
    from torch_rechub.basic.features import DenseFeature, SparseFeature
    from torch_rechub.models.multi_task import ESMM, MMOE, PLE, SharedBottom
    from torch_rechub.trainers import MTLTrainer
    from torch_rechub.utils.data import DataGenerator, PredictDataset

    if not args.bn:
        raise SystemExit("torch-rechub's MLP always has batch norm; --no-bn is not possible here")
    data = census_data.load(args.data_dir, args.rows)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    tasks = census_data.TASKS
    emb = args.embedding_dim
    expert = {"dims": list(args.expert_units)}
    towers = [{"dims": list(args.tower_units)} for _ in tasks]
    if name == "esmm":
        buckets, bucket_sizes = census_data.bucketize_numeric(data, ESMM_NUMERIC_BUCKETS)
        user = [SparseFeature(c, data.vocab_sizes[c], embed_dim=emb) for c in data.categorical_names]
        item = [SparseFeature(c, bucket_sizes[c], embed_dim=emb) for c in data.numeric_names]

        def inputs(split_name):
            return {**getattr(data, split_name).categorical, **buckets[split_name]}

        def labels(split):  # (cvr, ctr, ctcvr), the order the trainer expects
            y = split.labels
            return np.stack([y[:, 1], y[:, 0], y[:, 0] * y[:, 1]], axis=1)

        tower = {"dims": list(args.expert_units) + list(args.tower_units)}
        model = ESMM(user, item, cvr_params=tower, ctr_params=tower)
        task_types = ["classification"] * 3
        cfg = {"cvr_params": tower, "ctr_params": tower, "numeric_features": f"{ESMM_NUMERIC_BUCKETS} quantile buckets"}
    else:
        features = [SparseFeature(c, data.vocab_sizes[c], embed_dim=emb) for c in data.categorical_names] + [
            DenseFeature(c) for c in data.numeric_names]

        def inputs(split_name):
            return getattr(data, split_name).features()

        def labels(split):
            return split.labels

        task_types = ["classification"] * 2
        if name == "shared_bottom":
            model = SharedBottom(features, task_types, bottom_params=expert, tower_params_list=towers)
            cfg = {"bottom_params": expert, "tower_params_list": towers}
        elif name == "mmoe":
            model = MMOE(features, task_types, n_expert=args.mmoe_experts, expert_params=expert,
                         tower_params_list=towers)
            cfg = {"n_expert": args.mmoe_experts, "expert_params": expert, "tower_params_list": towers}
        elif name == "ple":
            model = PLE(features, task_types, n_level=args.ple_levels, n_expert_specific=args.ple_specific,
                        n_expert_shared=args.ple_shared, expert_params=expert, tower_params_list=towers)
            cfg = {"n_level": args.ple_levels, "n_expert_specific": args.ple_specific,
                   "n_expert_shared": args.ple_shared, "expert_params": expert, "tower_params_list": towers}
        else:
            raise ValueError(name)
    cfg.update(embedding_dim=emb, batch_norm=True, dropout=0.0, optimizer=f"Adam(lr={args.lr}, weight_decay=0)",
               batch_size=args.batch_size,
               loss="ctr + ctcvr BCE" if name == "esmm" else "mean of the two BCEs")

    x_train, x_val, x_test = inputs("train"), inputs("validation"), inputs("test")
    dg = DataGenerator(x_train, labels(data.train))
    train_loader = dg.generate_dataloader(x_val=x_val, y_val=labels(data.validation), x_test=x_test,
                                          y_test=labels(data.test), batch_size=args.batch_size)[0]
    trainer = MTLTrainer(model, task_types=task_types, optimizer_params={"lr": args.lr, "weight_decay": 0.0},
                         n_epoch=args.epochs, device="cpu", model_path=os.devnull)

    def predict(x):
        loader = DataLoader(PredictDataset(x), batch_size=args.infer_batch, shuffle=False)
        p = np.asarray(trainer.predict(trainer.model, loader))
        if name == "esmm":
            return {"income_50k": p[:, 1], "never_married": p[:, 0], "ctcvr": p[:, 2]}
        return {t: p[:, i] for i, t in enumerate(tasks)}

    clock = common.StepClock()
    clocked = _ClockedLoader(train_loader, clock)
    epoch_seconds, best = [], common.BestEpoch()
    phases.mark("setup")
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        losses = trainer.train_one_epoch(clocked)
        epoch_seconds.append(time.perf_counter() - t0)
        phases.mark("train")
        val = common.aucs(data.validation.labels, predict(x_val), tasks)
        print(f"[{LIBRARY}/{name}] epoch {epoch + 1}: train {epoch_seconds[-1]:.1f}s "
              f"loss {[round(float(v), 4) for v in losses]} val AUC {val}", flush=True)
        best.record(val, lambda: {k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
        phases.mark("validation")
    trainer.model.load_state_dict(best.weights)
    test_pred = predict(x_test)
    test_auc = common.aucs(data.test.labels, test_pred, tasks)
    if name == "esmm":
        from sklearn.metrics import roc_auc_score

        test_auc["ctcvr"] = round(float(roc_auc_score(data.test.labels.prod(axis=1), test_pred["ctcvr"])), 6)

    train_eps, basis = common.train_rate(epoch_seconds, len(data.train), clock, args.batch_size, args.warmup_steps)
    phases.mark("test")

    # Inference, batch args.infer_batch, over the test split, after one warm-up pass.
    predict(x_test)
    t0 = time.perf_counter()
    predict(x_test)
    infer_api = len(data.test) / (time.perf_counter() - t0)

    n_test, b = len(data.test), args.infer_batch
    batches = [{k: torch.from_numpy(v[i:i + b]) for k, v in x_test.items()} for i in range(0, n_test, b)]
    model.eval()
    with torch.inference_mode():
        model(batches[0])
        t0 = time.perf_counter()
        for batch in batches:
            out = model(batch)
            out.numpy()
        infer_call = n_test / (time.perf_counter() - t0)
    phases.mark("inference")

    return {
        "library": LIBRARY, "library_version": torch_rechub.__version__, "framework": "torch",
        "framework_version": f"torch {torch.__version__}",
        "model": name, "seed": args.seed, "config": cfg,
        "params": int(sum(p.numel() for p in model.parameters())),
        "epochs": args.epochs, "best_epoch": best.epoch, "val_auc_history": best.history,
        "test_auc": test_auc,
        "train_examples_per_s": round(train_eps, 1), "train_rate_basis": basis,
        "epoch_seconds": [round(s, 2) for s in epoch_seconds],
        "infer_batch": args.infer_batch, "infer_examples_per_s": round(infer_api, 1),
        "infer_api": "MTLTrainer.predict(DataLoader(PredictDataset, batch_size=infer_batch))",
        "infer_examples_per_s_model_call": round(infer_call, 1),
        "peak_rss_mib": common.peak_rss_mib(),
        "threads": {**threads, "torch_num_threads": torch.get_num_threads(),
                    "torch_interop_threads": torch.get_num_interop_threads()},
        "rows": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test)},
        "data_dir": data.data_dir, "wall_s": round(time.perf_counter() - t_start, 1), "phase_seconds": phases.seconds,
    }


def main():
    parser = common.base_parser(__doc__.split("\n")[0], census_data.add_data_args)
    common.run_main("bench.peers.run_rechub", run_one, parser.parse_args())

if __name__ == "__main__":
    main()

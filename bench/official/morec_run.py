"""Run microsoft/UniRec's MoRec (MF-BPR pretrain + MoRec continuation, PID and Static) on bench.morec's split.

    # 1. export our split (tfmtl venv): bench/official/morec_export.py
    .venv/bin/python -m bench.official.morec_export --out /work/official/data/morec_ml100k
    # 2. the official code (its own venv, Python 3.11 + torch CPU); one process per seed
    nice -n 10 /work/official/venv-morec/bin/python bench/official/morec_run.py --official /work/official/UniRec \\
        --data /work/official/data/morec_ml100k --seed 0 --out /work/official/out/morec_official_seed0.json
    # 3. score every kept epoch with OUR metric code (tfmtl venv) and write the comparison
    .venv/bin/python -m bench.official.morec_run --score /work/official/out/morec_official_seed*.json \\
        --tfmtl bench/results/morec_mf.json bench/results/morec_mf_official_settings.json \\
        --results bench/results/official_morec

Step 2 calls ``unirec.main.main.run`` (the entry point UniRec's MoRec notebook uses) twice per
solution with the official settings of ``examples/more-examples/morec/run_pipeline.sh``: pretrain MF
with BPR (10 popularity-sampled negatives, lr 1e-3, batch 512, dim 64, weight decay 1e-6, UniRec's
own early stopping on validation NDCG@10 with patience ``--patience``), then ``enable_morec=1`` from
that checkpoint (``morec_alpha``, ``morec_lambda`` 0.2, ``beta_min`` 0.1, ``beta_max`` 1.5, Kp 0.05,
Ki 0.001, ``morec_ngroup`` 10, no early stopping). Nothing inside UniRec is changed; three
read-only hooks record what the comparison needs: ``Trainer.evaluate`` (the user and item
embeddings at every validation pass, i.e. after 0, 1, ..., E epochs), ``Trainer._generate_train_loss_output``
(the per-epoch training loss: the base's, at its best epoch, is the PID set point, as
``morec_objective_controller.py`` line 248 prescribes) and ``PIController.control`` (the PID's beta).

From the embeddings the runner writes, per epoch, the top-10 lists for validation (user's training
items excluded) and test (training + validation items excluded), bench.morec's protocol; step 3
scores them with :mod:`tfmtl.training.metrics` exactly as bench.morec does and keeps, per solution,
the epoch with the best validation Imp among those valid on validation (else the last), as
bench.morec does; the official code's own choice (the last validated epoch) is reported too.

Static in UniRec (``morec_objective_controller: Static``) weighs all four losses with one fixed
vector (fairness, alignment, revenue, accuracy); here ``[lambda * p, 1]``: the PID run's loss with
beta fixed at 1, which is bench.morec's ``static`` under ``--objective-scale 0.2``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

K = 10
OBJECTIVES = ("fairness", "alignment", "revenue")  # UniRec's order; the accuracy batch comes last
# (p_rev, p_fair, p_align) as bench.morec writes them: the official script's [0.1, 0.1, 0.8]
# (fairness, alignment, revenue: revenue 0.8) and the notebook's [0.2, 0.2, 0.6] (revenue 0.6).
OFFICIAL_PREFERENCES = [(0.8, 0.1, 0.1), (0.6, 0.2, 0.2)]
OFFICIAL_SETTINGS = {"morec_ngroup": 10, "morec_alpha": 0.01, "morec_lambda": 0.2, "morec_beta_min": 0.1,
                     "morec_beta_max": 1.5, "morec_K_p": 0.05, "morec_K_i": 0.001}


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


# ============================================================================ step 2: official code
def base_config(args: argparse.Namespace, seed: int, name: str) -> dict[str, Any]:
    """The shared UniRec arguments (run_pipeline.sh's), our data folder and a per-run output folder."""
    return {"config_dir": os.path.join(args.data, "config"), "model": "MF", "dataloader": "BaseDataset",
            "dataset": "morec_ml100k", "dataset_path": args.data,
            "output_path": os.path.join(args.work, f"seed{seed}", name), "exp_name": name, "checkpoint_dir": name,
            "learning_rate": 0.001, "dropout_prob": 0.0, "embedding_size": 64, "hidden_size": 64,
            "use_pre_item_emb": 0, "loss_type": "bpr", "max_seq_len": 20, "has_user_bias": 0, "has_item_bias": 0,
            "batch_size": 512, "n_sample_neg_train": 10, "neg_by_pop_alpha": 1.0,
            "valid_protocol": "one_vs_all", "test_protocol": "one_vs_all", "grad_clip_value": -1,
            "weight_decay": 1e-6, "history_mask_mode": "autoregressive", "user_history_filename": "user_history",
            "metrics": "['hit@10', 'ndcg@10']", "key_metric": "ndcg@10", "num_workers": 0, "num_workers_test": 0,
            "verbose": 2, "item_meta_morec_filename": "item_meta_morec.csv", "align_dist_filename": "align_dist.csv",
            "use_wandb": 0, "use_tensorboard": 0, "gpu_id": -1, "use_gpu": False, "seed": seed,
            # the notebook's (the shell scripts keep base.yaml's ReduceLROnPlateau, whose ``verbose``
            # argument torch 2.13 no longer takes: trainer.py line 158)
            "scheduler": None}


class Recorder:
    """Read-only hooks on UniRec's Trainer and PIController (see the module docstring)."""

    def __init__(self, unirec, stop_after: int | None = None):
        self.stop_after = stop_after
        self.snapshots: list[tuple[np.ndarray, np.ndarray]] = []
        self.valid: list[float] = []
        self.train_loss: list[float] = []
        self.beta: list[float] = []
        self.beta_per_epoch: list[dict[str, float]] = []
        trainer_cls = unirec["Trainer"]
        controller_cls = unirec["PIController"]
        recorder = self
        evaluate, loss_output, control = trainer_cls.evaluate, trainer_cls._generate_train_loss_output, \
            controller_cls.control

        def evaluate_hook(self, eval_data, load_best_model=True, *a, **kw):
            if not load_best_model:  # a validation pass inside fit(): after 0, 1, ... epochs
                model = self.model
                recorder.snapshots.append((model.user_embedding.weight.detach().cpu().numpy().copy(),
                                           model.item_embedding.weight.detach().cpu().numpy().copy()))
                if recorder.beta:
                    b = np.asarray(recorder.beta)
                    recorder.beta_per_epoch.append({"mean": float(b.mean()), "min": float(b.min()),
                                                    "max": float(b.max()), "last": float(b[-1])})
                    recorder.beta = []
            result = evaluate(self, eval_data, load_best_model, *a, **kw)
            if not load_best_model:
                recorder.valid.append(float(result[self.config["key_metric"]]))
                if recorder.stop_after is not None and len(recorder.snapshots) > recorder.stop_after:
                    # UniRec validates before each epoch, so its last epoch would train unseen: stop
                    # here the way main.py allows (it catches KeyboardInterrupt and goes on to test)
                    raise KeyboardInterrupt
            return result

        def loss_hook(self, epoch_idx, s_time, e_time, losses):
            recorder.train_loss.append(float(losses))  # the epoch's sum of batch losses
            return loss_output(self, epoch_idx, s_time, e_time, losses)

        def control_hook(self, loss):
            beta = control(self, loss)
            recorder.beta.append(float(beta))
            return beta

        trainer_cls.evaluate, trainer_cls._generate_train_loss_output = evaluate_hook, loss_hook
        controller_cls.control = control_hook
        self._restore = lambda: (setattr(trainer_cls, "evaluate", evaluate),
                                 setattr(trainer_cls, "_generate_train_loss_output", loss_output),
                                 setattr(controller_cls, "control", control))

    def close(self) -> None:
        self._restore()


def top_lists(users: np.ndarray, items: np.ndarray, exclude: list[np.ndarray], k: int = K) -> np.ndarray:
    """``[num_users, k]`` our (0-based) item ids by dot product, each user's ``exclude`` items left out."""
    scores = users[1:] @ items[1:].T  # UniRec row 0 is padding
    for u, seen in enumerate(exclude):
        scores[u, seen] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
    return np.take_along_axis(top, order, 1)


def exclusions(data_dir: str) -> dict[str, list[np.ndarray]]:
    """bench.morec's: validation leaves out the user's training items, test also their validation items."""
    import pandas as pd

    train, valid = (pd.read_feather(os.path.join(data_dir, f"{n}.ftr")) for n in ("train", "valid"))
    num_users = int(max(train["user_id"].max(), valid["user_id"].max()))
    seen_train = [[] for _ in range(num_users)]
    for u, i in zip(train["user_id"].to_numpy() - 1, train["item_id"].to_numpy() - 1):
        seen_train[u].append(i)
    seen_all = [list(s) for s in seen_train]
    for u, i in zip(valid["user_id"].to_numpy() - 1, valid["item_id"].to_numpy() - 1):
        seen_all[u].append(i)
    return {"val": [np.asarray(s, np.int64) for s in seen_train], "test": [np.asarray(s, np.int64) for s in seen_all]}


def pretrain(args: argparse.Namespace, seed: int, unirec: dict, unirec_main, result: dict[str, Any]) -> None:
    """UniRec MF-BPR pretraining; ``result["base"]``: best epoch, set point (its training loss), checkpoint."""
    start, rec = time.perf_counter(), Recorder(unirec)
    config = {**base_config(args, seed, "pretrain"), "epochs": args.max_epochs + 1, "early_stop": args.patience}
    unirec_main.run(config)
    rec.close()
    steps = int(np.ceil(args.train_rows / 512))
    best = int(np.argmax(rec.valid))  # validation pass n evaluates the model after n epochs
    if best == 0:
        raise RuntimeError("pretraining never beat the untrained model on validation")
    set_point = rec.train_loss[best - 1] / steps
    model_file = os.path.join(args.work, f"seed{seed}", "pretrain", "pretrain", "MF-pretrain.pth")
    if not os.path.exists(model_file):
        found = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(args.work, f"seed{seed}", "pretrain"))
                 for f in fs if f.endswith(".pth")]
        if len(found) != 1:
            raise RuntimeError(f"expected one pretrain checkpoint, found {found}")
        model_file = found[0]
    result["base"] = {"best_epoch": best, "epochs_run": len(rec.valid) - 1, "valid_ndcg@10": rec.valid,
                      "train_loss_per_epoch": [v / steps for v in rec.train_loss], "set_point": set_point,
                      "model_file": model_file, "seconds": time.perf_counter() - start,
                      "load": os.getloadavg()[0]}
    print(f"[seed {seed} base] best epoch {best}/{len(rec.valid) - 1} set point {set_point:.4f} "
          f"({result['base']['seconds']:.0f}s)", flush=True)


def run_official(args: argparse.Namespace) -> None:
    sys.path.insert(0, os.path.abspath(args.official))
    # UniRec predates NumPy 2 (it uses np.Inf, ...): restore the removed aliases, same values.
    for alias, value in {"Inf": np.inf, "NaN": np.nan, "float_": np.float64, "int_": np.int64}.items():
        if alias not in np.__dict__:
            setattr(np, alias, value)
    # UniRec reloads its own checkpoints (written by this run) with torch.load's pre-2.6 default.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import torch
    from unirec.facility.morec import morec_data_sampler
    from unirec.facility.morec.morec_objective_controller import PIController
    from unirec.facility.trainer import Trainer
    from unirec.main import main as unirec_main

    # MoRecDS passes ``Sampler(train_data)`` to BatchSampler; torch 2.13's Sampler takes no
    # arguments (morec_data_sampler.py line 26). BatchSampler only iterates it: same order.
    morec_data_sampler.Sampler = torch.utils.data.SequentialSampler

    torch.set_num_threads(args.threads)
    unirec = {"Trainer": Trainer, "PIController": PIController}
    excl = exclusions(args.data)
    seed = args.seed
    result: dict[str, Any] = {"seed": seed, "official": os.path.abspath(args.official), "data": args.data,
                              "settings": {**OFFICIAL_SETTINGS, "morec_alpha": args.alpha,
                                           "finetune_epochs": args.epochs, "patience": args.patience},
                              "runs": {}}
    lists_path = os.path.splitext(args.out)[0] + ".npz"
    arrays: dict[str, np.ndarray] = {}

    def save():
        tmp = lists_path + ".tmp.npz"
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, lists_path)
        result["lists"] = lists_path
        _write_json(args.out, result)

    def lists_of(recorder: Recorder) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([top_lists(u, i, excl["val"]) for u, i in recorder.snapshots]),
                np.stack([top_lists(u, i, excl["test"]) for u, i in recorder.snapshots]))

    # 1. pretrain MF-BPR with UniRec's early stopping on validation NDCG@10 (reused if this
    # seed's JSON already holds it, so that a failed continuation can be rerun alone)
    previous = None
    if os.path.exists(args.out):
        with open(args.out) as f:
            previous = json.load(f)
    if previous and previous.get("base") and os.path.exists(previous["base"]["model_file"]):
        result["base"], result["runs"] = previous["base"], previous.get("runs", {})
        if os.path.exists(lists_path):
            arrays.update(np.load(lists_path))
        # a copy of another process's JSON (to run the methods in parallel): keep only runs listed here
        result["runs"] = {k: r for k, r in result["runs"].items() if r.get("lists") == lists_path}
    else:
        pretrain(args, seed, unirec, unirec_main, result)
        save()
    model_file, set_point = result["base"]["model_file"], result["base"]["set_point"]

    # 2. MoRec continuation: PID and Static, each preference vector
    for method in args.methods:
        for prefs in args.preferences:
            p_rev, p_fair, p_align = prefs
            key = f"{'morec' if method == 'PID' else 'static'} {p_rev:.2f}/{p_fair:.2f}/{p_align:.2f}"
            if key in result["runs"]:
                continue
            by_name = {"fairness": p_fair, "alignment": p_align, "revenue": p_rev}
            if method == "PID":
                weights = [by_name[o] for o in OBJECTIVES]
            else:
                weights = [OFFICIAL_SETTINGS["morec_lambda"] * by_name[o] for o in OBJECTIVES] + [1.0]
            name = key.replace(" ", "_").replace("/", "-")
            start, rec = time.perf_counter(), Recorder(unirec, stop_after=args.epochs)
            config = {**base_config(args, seed, name), **OFFICIAL_SETTINGS, "morec_alpha": args.alpha,
                      "enable_morec": 1, "model_file": model_file, "epochs": args.epochs + 1, "early_stop": -1,
                      "morec_objectives": list(OBJECTIVES), "morec_objective_controller": method,
                      "morec_objective_weights": str(weights), "morec_expect_loss": set_point}
            unirec_main.run(config)
            rec.close()
            val_lists, test_lists = lists_of(rec)
            arrays[f"{name}/val"], arrays[f"{name}/test"] = val_lists, test_lists
            result["runs"][key] = {"method": "morec" if method == "PID" else "static",
                                   "controller": method, "objective_weights": weights,
                                   "epochs_run": len(rec.snapshots) - 1, "valid_ndcg@10": rec.valid,
                                   "beta_per_epoch": rec.beta_per_epoch, "arrays": name, "lists": lists_path,
                                   "seconds": time.perf_counter() - start, "load": os.getloadavg()[0]}
            print(f"[seed {seed} {key}] {len(rec.snapshots) - 1} epochs, beta "
                  f"{[round(b['mean'], 4) for b in rec.beta_per_epoch]} ({time.perf_counter() - start:.0f}s)",
                  flush=True)
            save()
    result["done"] = True
    save()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", default="/work/official/UniRec", help="UniRec checkout")
    parser.add_argument("--data", default="/work/official/data/morec_ml100k", help="morec_export.py output")
    parser.add_argument("--work", default="/work/official/out/morec_runs", help="UniRec's logs and checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="per-seed JSON (lists in the .npz beside it)")
    parser.add_argument("--epochs", type=int, default=10, help="MoRec continuation epochs (official 30-50)")
    parser.add_argument("--max-epochs", type=int, default=200, help="pretraining cap (official 200)")
    parser.add_argument("--patience", type=int, default=10, help="pretraining early stop (notebook: 10)")
    parser.add_argument("--alpha", type=float, default=OFFICIAL_SETTINGS["morec_alpha"],
                        help="sampler step morec_alpha (run_pipeline.sh 0.01, notebook 0.1)")
    parser.add_argument("--methods", nargs="+", choices=["PID", "Static"], default=["PID", "Static"])
    parser.add_argument("--preferences", nargs="+", type=lambda s: tuple(float(v) for v in s.split(",")),
                        default=OFFICIAL_PREFERENCES, help="rev,fair,align triples")
    parser.add_argument("--train-rows", type=int, default=95285, help="training rows (steps per epoch)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--score", nargs="+", metavar="JSON", help="score per-seed JSON files (tfmtl venv)")
    parser.add_argument("--tfmtl", nargs="+", default=[], help="bench.morec result JSON files to compare")
    parser.add_argument("--results", help="write <results>.json and .md")
    args = parser.parse_args(argv)
    if args.score:
        from bench.official.morec_report import report

        report(args.score, args.tfmtl, args.results)
        return
    for p in args.preferences:
        if len(p) != 3 or min(p) < 0:
            parser.error(f"--preferences: each must be three non-negative numbers rev,fair,align, got {p}")
    args.out = args.out or f"/work/official/out/morec_official_seed{args.seed}.json"
    run_official(args)


if __name__ == "__main__":
    main()

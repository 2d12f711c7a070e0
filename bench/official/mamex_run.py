"""Run the official MAMEX code (Rec4Fun/MAMEX) on bench/coldstart.py's split (issue 33).

Needs Python 3.11 with torch, faiss-cpu, numba and tensorboardX (not the repo's venv) and a copy of the
official repository Rec4Fun/MAMEX at commit 928b614bbcdf6994ae82b71c4d8bd0f4c53ae2f5:

    .venv/bin/python -m bench.official.mamex_export --out /work/official/data/mamex_ml100k
    /work/official/venv-mamex/bin/python bench/official/mamex_run.py --official /work/official/MAMEX \
        --data /work/official/data/mamex_ml100k --seeds 0 --out /work/official/out/mamex_official_seed0.json

The model (``model.py`` ``MOME_model``), data loader (``loader.py`` ``Loader4MM``), sampler, losses,
optimiser and training loop with its early stopping (``session.py`` ``Session.train``) are the official
ones, with ``main.py``'s default arguments (:data:`OFFICIAL_DEFAULTS`). What this runner changes:

* the data folder (``Env.DATA_PATH``, fixed to ``'baby'`` in ``enviroment.py``) and the working
  directory (``Env`` creates ``exp_report/`` there: a temporary folder);
* the validation score the official loop selects on: ``Session.test(mode='val')`` ranks the cold items
  for the users of ``val.txt``, but our split's validation rows are warm items (bench/coldstart.py has no
  cold validation set), so here it returns the mean of the click and conversion AUCs on the warm
  validation exposures, bench/coldstart.py's own criterion, under the key the official loop reads
  (NDCG@10, ``session.py`` line 114); the official ``eva_interval`` / ``early_stop`` logic is unchanged;
* at each improvement (where the official loop calls ``test(mode='test')``) it also records
  bench/coldstart.py's cold-item ranking metric for its 300 users (:func:`rank_metrics`, the same
  formula and tie-break) and the cold click / conversion AUCs; the official ``num_faiss_evaluate``
  scores all test users, with the training-item mask cut to the candidates (see
  :func:`official_metrics`).

``--lr``, ``--batch-size``, ``--free-emb-dimension``, ``--epoch``, ``--eva-interval`` and
``--early-stop`` override the official values.

Diagnostic, not an official setting: ``--negatives warm`` (default ``all``, the official sampler) replaces,
at run time, ``loader.py`` ``PairSample`` (line 223: ``negitem = np.random.randint(0, dataset.m_item)``, a
negative from all items, the cold ones included) by :func:`warm_pair_sample`, which draws the negative from
the items of the training data only and keeps the rest of the official sampler (the rejection of the
user's training positives, the random user / item columns). The official checkout is not edited: the
runner rebinds the name ``session.py`` calls (``from loader import *``). The option is recorded in the
output JSON's ``settings["negatives"]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd

# main.py parse_args (lines 12-45), with use_gpu off (CPU) and no log / tensorboard / checkpoint files
OFFICIAL_DEFAULTS = dict(suffix="default", use_gpu=0, device_id=0, seed=2025, ckpt=None, ckpt_start_epoch=0,
                         free_emb_dimension=128, lr=0.001, epoch=1000, eva_interval=10, neg_num=1, batch_size=2048,
                         early_stop=200, topk=[10, 20, 30, 40, 50], dataset="baby", reg_coeff=1e-6,
                         penalty_coeff=50, align_coeff=1, moe_balance_coeff=1, fusion_balance_coeff=1, log=0,
                         tensorboard=0, save=0)
KS = (10, 20)  # bench/coldstart.py --ks default
NEGATIVES = ("all", "warm")  # --negatives: all = official loader.py PairSample; warm = warm_pair_sample (diagnostic)
TASKS = ("click", "conversion")


def warm_pair_sample(dataset) -> np.ndarray:
    """``loader.py`` ``PairSample`` (lines 209-231) with the BPR negative drawn from the training items only.

    Official: ``negitem = np.random.randint(0, dataset.m_item)`` (line 223), any item, cold ones included;
    here ``negitem`` is a uniform draw from the sorted items of ``dataset.trainItem`` (the warm items),
    rejected and redrawn while it is one of the user's positives (``dataset.allPos[user]``), as the official
    loop does. The user loop, the positives and the ``random_user`` / ``random_item`` columns are the
    official ones, drawn from ``np.random`` in the same order. Needs only numpy (no torch, no official code).
    """
    warm = np.array(sorted(int(i) for i in dataset.trainItem), dtype=np.int64)
    all_pos = dataset.allPos
    rows = []
    for user in dataset.train_data.keys():
        positives = all_pos[user]
        if len(positives) == 0:
            continue
        for positem in dataset.train_data[user]:
            while True:
                negitem = int(warm[np.random.randint(0, len(warm))])
                if negitem not in positives:
                    break
            random_user = np.random.randint(0, dataset.n_user)
            random_item = np.random.randint(0, dataset.m_item)
            rows.append([user, positem, negitem, random_user, random_item])
    return np.array(rows)


def rank_metrics(scores: np.ndarray, item_ids: np.ndarray, relevant: list[set], ks=KS) -> dict:
    """bench/coldstart.py ``ranking``'s Recall@K / NDCG@K from a ``[users, items]`` score matrix.

    Recall@K = hits in the top K / min(|relevant|, K); NDCG@K with the ideal DCG over min(|relevant|, K)
    positions; ties broken by one random permutation per user from ``default_rng(0)``, in user order.
    """
    result = {f"recall@{k}": [] for k in ks} | {f"ndcg@{k}": [] for k in ks}
    discounts = 1.0 / np.log2(np.arange(2, max(ks) + 2))
    rng = np.random.default_rng(0)
    for row, wanted in enumerate(relevant):
        shuffled = rng.permutation(len(item_ids))
        top = item_ids[shuffled[np.argsort(-scores[row, shuffled], kind="stable")[: max(ks)]]]
        hits = np.array([item in wanted for item in top], np.float64)
        for k in ks:
            result[f"recall@{k}"].append(hits[:k].sum() / min(len(wanted), k))
            ideal = discounts[: min(len(wanted), k)].sum()
            result[f"ndcg@{k}"].append((hits[:k] * discounts[:k]).sum() / ideal)
    return {name: float(np.mean(values)) for name, values in result.items()} | {"users": len(relevant)}


def exposure_aucs(frame: pd.DataFrame, user_emb: np.ndarray, item_emb: np.ndarray) -> dict:
    """Click / conversion AUC of the official score (user . item) on exposures ``uid, item, click, conversion``."""
    from sklearn.metrics import roc_auc_score

    scores = np.einsum("nd,nd->n", user_emb[frame["uid"].to_numpy()], item_emb[frame["item"].to_numpy()])
    return {task: float(roc_auc_score(frame[task], scores)) for task in TASKS}


def load_extras(data_dir: str) -> dict:
    """The files bench/official/mamex_export.py writes beside the official ones."""
    with open(os.path.join(data_dir, "rank_users.txt")) as f:
        users = [int(line) for line in f if line.strip()]
    return {"validation": pd.read_csv(os.path.join(data_dir, "validation_exposures.csv")),
            "cold": pd.read_csv(os.path.join(data_dir, "cold_exposures.csv")), "rank_users": users,
            "cold_items": np.sort(np.load(os.path.join(data_dir, "cold_item_index.npy")))}


def run_seed(data_dir: str, seed: int, settings: dict, progress=None) -> dict:
    """Train the official MOME_model with the official Session once; metrics at its best validation epoch.

    ``progress(partial)``, if given, gets the run so far after every evaluation (so a stopped run keeps it).
    """
    import session as official_session
    import torch
    from enviroment import Env
    from evaluation import num_faiss_evaluate
    from loader import Loader4MM, PairSample
    from model import MOME_model
    from session import Session

    extras = load_extras(data_dir)
    cold_items = extras["cold_items"]
    cold_set = set(cold_items.tolist())

    def embeddings(model):
        model.eval()
        with torch.no_grad():
            user_emb, item_emb = model()[:2]
        return user_emb.detach().numpy(), item_emb.detach().numpy()

    def official_metrics(session, user_emb, item_emb):
        # session.py test(mode='test') with the training-item mask cut to the candidates: no cold item is in
        # train_data, so the mask removes nothing, but its length (up to ~600 items) would ask faiss for more
        # neighbours than the 336 candidates (evaluation.py:62-64): the missing ones come back as -1, map to None
        # and the official call fails with a TypeError
        mask = {u: [i for i in items if i in cold_set] for u, items in session.dataset.train_data.items()}
        hr, recall, ndcg = num_faiss_evaluate(session.dataset.test_data, list(session.dataset.test_data.keys()),
                                              list(session.dataset.cold_item_index), mask, settings["topk"],
                                              user_emb, item_emb)
        return {"hr": {str(k): float(v) for k, v in hr.items()},
                "recall": {str(k): float(v) for k, v in recall.items()},
                "ndcg": {str(k): float(v) for k, v in ndcg.items()}}

    class WarmValidationSession(Session):
        """The official Session; validation = bench/coldstart.py's warm AUC, test = both ranking metrics."""

        def __init__(self, *args):
            super().__init__(*args)
            self.validation_history, self.at_best = [], None

        def test(self, mode="val", top_list=(50,)):
            started = time.time()
            user_emb, item_emb = embeddings(self.model)
            if mode == "val":
                aucs = exposure_aucs(extras["validation"], user_emb, item_emb)
                score = float(np.mean(list(aucs.values())))
                self.validation_history.append({"epoch": self.total_epoch - 1, "score": score, **aucs})
                if progress is not None and self.at_best is not None:
                    progress(summarise(self, finished=False))
                same = {k: score for k in top_list}
                return same, same, same, time.time() - started
            relevant = [set(self.dataset.test_data[u]) for u in extras["rank_users"] if self.dataset.test_data.get(u)]
            users = [u for u in extras["rank_users"] if self.dataset.test_data.get(u)]
            self.at_best = {"epoch": self.total_epoch - 1,
                            "ranking": rank_metrics(user_emb[users] @ item_emb[cold_items].T, cold_items, relevant),
                            "cold_auc": exposure_aucs(extras["cold"], user_emb, item_emb),
                            "official": official_metrics(self, user_emb, item_emb)}
            official = self.at_best["official"]
            hr, recall, ndcg = ({int(k): v for k, v in official[name].items()} for name in ("hr", "recall", "ndcg"))
            return hr, recall, ndcg, time.time() - started

    def summarise(session, finished):
        best = session.at_best
        return {"valid_auc_by_eval": session.validation_history, "best_epoch": best["epoch"],
                "epochs_run": session.total_epoch, "finished": finished,
                "converged": finished and session.total_epoch < args.epoch, "ranking": best["ranking"],
                "cold_auc": best["cold_auc"], "official_metric": best["official"],
                "n_user": int(session.dataset.n_user), "m_item": int(session.dataset.m_item),
                "train_seconds": time.time() - started, "load": os.getloadavg()[0],
                "seconds_per_epoch": (time.time() - started) / max(session.total_epoch, 1)}

    # --negatives warm (diagnostic): session.py's train_epoch calls the PairSample it imported from loader.py
    official_session.PairSample = warm_pair_sample if settings.get("negatives", "all") == "warm" else PairSample
    args = SimpleNamespace(**dict(settings, seed=seed))
    here = os.getcwd()
    started = time.time()
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)  # Env makes exp_report/ under its ROOT_PATH './'
        try:
            env = Env(args)
            env.DATA_PATH = os.path.abspath(os.path.join(here, data_dir))
            dataset = Loader4MM(env)
            model = MOME_model(env, dataset)
            session = WarmValidationSession(env, model, dataset)
            started = time.time()
            session.train(args.epoch)
        finally:
            os.chdir(here)
    return summarise(session, finished=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, help="path of the official MAMEX checkout")
    parser.add_argument("--data", required=True, help="folder written by bench.official.mamex_export")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", required=True, help="JSON path for the per-seed results")
    for name in ("free_emb_dimension", "epoch", "eva_interval", "batch_size", "early_stop"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=OFFICIAL_DEFAULTS[name])
    parser.add_argument("--lr", type=float, default=OFFICIAL_DEFAULTS["lr"])
    parser.add_argument("--negatives", choices=NEGATIVES, default="all",
                        help="diagnostic: 'warm' draws the BPR negatives from the training items only "
                             "(default 'all': the official loader.py PairSample)")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.official, "model.py")) or not os.path.isfile(
            os.path.join(args.official, "session.py")):
        parser.error(f"--official: {args.official!r} has no model.py / session.py (a copy of the official MAMEX repo)")
    if not os.path.isfile(os.path.join(args.data, "cold_item_index.npy")):
        parser.error(f"--data: {args.data!r} has no cold_item_index.npy (run bench.official.mamex_export first)")
    sys.path.insert(0, os.path.abspath(args.official))
    settings = dict(OFFICIAL_DEFAULTS, **{name: getattr(args, name) for name in (
        "free_emb_dimension", "epoch", "eva_interval", "batch_size", "early_stop", "lr")},
                    negatives=args.negatives)
    results = {"settings": settings, "runs": {}}

    def save(seed, run):
        results["runs"][str(seed)] = run
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(args.out + ".tmp", args.out)

    for seed in args.seeds:
        info = run_seed(args.data, seed, settings, progress=lambda run, seed=seed: save(seed, run))
        save(seed, info)
        print(f"seed {seed}: recall@10 {info['ranking']['recall@10']:.4f} ndcg@10 {info['ranking']['ndcg@10']:.4f} "
              f"cold click AUC {info['cold_auc']['click']:.4f}, best epoch {info['best_epoch']} of "
              f"{info['epochs_run']} ({info['train_seconds']:.0f}s)", flush=True)


if __name__ == "__main__":
    main()

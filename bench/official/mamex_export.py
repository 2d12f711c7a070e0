"""Export bench/coldstart.py's split in the layout the official MAMEX code (Rec4Fun/MAMEX) reads.

    .venv/bin/python -m bench.official.mamex_export --out /work/official/data/mamex_ml100k

Rows: :func:`tfmtl.datasets.movielens.coldstart_split` with bench/coldstart.py's defaults (20% of the
movies held out as cold items, seed 0, 16 collaborative factors). User ``u`` is index ``user_id - 1``,
movie ``m`` is item index ``movie_id - 1`` (all 1,682 movies, so the feature rows line up with the ids).

Files the official ``loader.py`` ``Loader4MM`` reads (``uid item item ...`` lines, positives only):

* ``train.txt``: the rated (``click`` = 1) pairs of our warm training exposures;
* ``val.txt``: the rated pairs of our warm validation exposures (the official loader only parses them:
  our split has no cold validation set, so bench/official/mamex_run.py selects on the warm validation
  AUC, as bench/coldstart.py does, from ``validation_exposures.csv``);
* ``test.txt``: the rated pairs of our cold exposures (relevant = the cold items a user rated);
* ``cold_item_index.npy``: the 336 cold item indices (the candidates the official evaluation ranks);
* ``text_feat.npy``: a dense title vector, where the official code reads pre-extracted text features:
  the title's token counts over the vocabulary bench/coldstart.py's title encoder is built with
  (:func:`tfmtl.models.mamex.modality_specs` on the training frame, the same TextVectorization
  standardisation, out-of-vocabulary tokens dropped), tf-idf weighted and reduced to
  :data:`TITLE_DIM` by a truncated SVD, both fitted on the warm items only (the raw ~2,000-token counts
  made an official epoch 7 s on one core, too slow for 3 seeds of up to 1,000 epochs here);
* ``image_feat.npy``: the official model's second (``image``) slot, which our data has no image for:
  the 19 genre indicators and ``year_z`` (the standardised release year; the one unknown year as 0,
  the warm mean).

Not read by the official code, written for the runner and the test: ``cf_feat.npy`` (our 16
collaborative factors, NaN rows for every cold item: the official model has no slot for a modality
that is missing), ``validation_exposures.csv`` / ``cold_exposures.csv`` (``uid, item, click,
conversion`` of every exposure, for the AUCs), ``rank_users.txt`` (the users bench/coldstart.py
ranks cold items for) and ``export.json`` (counts and the id mapping).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pandas as pd
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer

from tfmtl.compat import keras
from tfmtl.datasets import movielens
from tfmtl.models.mamex import modality_specs

SPLIT_SEED = 0  # bench/coldstart.py: movielens.coldstart_split(args.holdout_share, seed=0, ...)
HOLDOUT_SHARE = 0.2  # bench/coldstart.py --holdout-share default
CF_DIM = 16  # bench/coldstart.py --cf-dim default
RANK_USERS = 300  # bench/coldstart.py --rank-users default
TITLE_DIM = 128  # the official free_emb_dimension (main.py), the width each modality's experts map to
EXPOSURE_COLUMNS = ("uid", "item", "click", "conversion")
POSITIVE_FILES = {"train": "train.txt", "validation": "val.txt", "cold": "test.txt"}


def load_split() -> movielens.ColdStartData:
    """bench/coldstart.py's data, with its default settings."""
    return movielens.coldstart_split(HOLDOUT_SHARE, seed=SPLIT_SEED, cf_dim=CF_DIM)


def rank_users(data: movielens.ColdStartData, count: int = RANK_USERS) -> list[str]:
    """The users bench/coldstart.py's ``run`` samples for the cold-item ranking (its own draw, repeated)."""
    rng = np.random.default_rng(0)
    users = data.cold["user_id"].unique()
    return sorted(rng.choice(users, size=min(count, len(users)), replace=False).tolist())


def user_index(user_ids: pd.Series) -> np.ndarray:
    return user_ids.astype(np.int64).to_numpy() - 1


def item_index(movie_ids: pd.Series) -> np.ndarray:
    return movie_ids.astype(np.int64).to_numpy() - 1


def positive_lines(frame: pd.DataFrame) -> list[str]:
    """``uid item item ...`` per user with at least one rated pair, in user order."""
    rated = frame[frame["click"] == 1]
    by_user = pd.DataFrame({"uid": user_index(rated["user_id"]), "item": item_index(rated["movie_id"])})
    return [f"{uid} " + " ".join(str(i) for i in group["item"]) for uid, group in by_user.groupby("uid", sort=True)]


def exposures(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"uid": user_index(frame["user_id"]), "item": item_index(frame["movie_id"]),
                         "click": frame["click"].astype(np.int64), "conversion": frame["conversion"].astype(np.int64)})


def item_features(data: movielens.ColdStartData) -> dict[str, np.ndarray]:
    """Per-item arrays ``[1682, d]`` in item-index order: title counts, genres + year, collaborative factors."""
    items = data.items.sort_values("movie_id").reset_index(drop=True)
    if not (items["movie_id"].to_numpy() == np.arange(1, len(items) + 1)).all():
        raise ValueError("items: movie_id must run 1..N without gaps to serve as item index + 1")
    title_spec = next(m for m in modality_specs(data.modalities, data.train) if m["name"] == "title")
    counts = keras.layers.TextVectorization(vocabulary=title_spec["vocabulary"], output_mode="count")
    # column 0 counts out-of-vocabulary tokens: dropped, as the vocabulary is the encoder's whole input space
    token_counts = np.asarray(counts(items["title"].fillna("").astype(str).to_numpy()))[:, 1:]
    warm = ~items["cold"].to_numpy()
    tfidf = TfidfTransformer().fit(token_counts[warm])
    svd = TruncatedSVD(TITLE_DIM, random_state=0).fit(tfidf.transform(token_counts[warm]))
    text = svd.transform(tfidf.transform(token_counts)).astype(np.float32)
    year = items[data.modalities["year"]].fillna(0.0).to_numpy(np.float32)
    genres = items[list(data.modalities["genres"])].to_numpy(np.float32)
    cf = items[list(data.modalities["cf"])].to_numpy(np.float32)
    return {"text_feat": text, "image_feat": np.concatenate([genres, year], axis=1), "cf_feat": cf}


def _write_text(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _write_npy(path: str, array: np.ndarray) -> None:
    with open(path + ".tmp", "wb") as f:
        np.save(f, array)
    os.replace(path + ".tmp", path)


def write(out_dir: str, data: movielens.ColdStartData | None = None) -> dict:
    """Write every file listed in the module docstring into ``out_dir``; return ``export.json``'s content."""
    data = load_split() if data is None else data
    os.makedirs(out_dir, exist_ok=True)
    parts = {"train": data.train, "validation": data.validation, "cold": data.cold}
    for name, filename in POSITIVE_FILES.items():
        _write_text(os.path.join(out_dir, filename), "\n".join(positive_lines(parts[name])) + "\n")
    cold_items = np.sort(item_index(data.items.loc[data.items["cold"], "movie_id"]))
    _write_npy(os.path.join(out_dir, "cold_item_index.npy"), cold_items)
    features = item_features(data)
    for name, array in features.items():
        _write_npy(os.path.join(out_dir, name + ".npy"), array)
    for name, frame in (("validation", data.validation), ("cold", data.cold)):
        path = os.path.join(out_dir, f"{name}_exposures.csv")
        exposures(frame).to_csv(path + ".tmp", index=False)
        os.replace(path + ".tmp", path)
    users = rank_users(data)
    _write_text(os.path.join(out_dir, "rank_users.txt"), "\n".join(str(u) for u in user_index(pd.Series(users))) + "\n")
    meta = {"source": "tfmtl.datasets.movielens.coldstart_split", "holdout_share": HOLDOUT_SHARE,
            "split_seed": SPLIT_SEED, "cf_dim": CF_DIM, "uid": "user_id - 1", "item": "movie_id - 1",
            "rows": {name: len(frame) for name, frame in parts.items()},
            "positives": {name: int(frame["click"].sum()) for name, frame in parts.items()},
            "items": len(data.items), "cold_items": len(cold_items), "rank_users": len(users),
            "feature_dims": {name: int(array.shape[1]) for name, array in features.items()},
            "text_feat": f"title token counts, tf-idf, truncated SVD to {TITLE_DIM} (fitted on warm items)",
            "image_feat_columns": list(data.modalities["genres"]) + list(data.modalities["year"])}
    _write_text(os.path.join(out_dir, "export.json"), json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the exported files (outside the repository)")
    print(json.dumps(write(parser.parse_args(argv).out), indent=1))


if __name__ == "__main__":
    main()

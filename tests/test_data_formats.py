"""core.data on the files users have: .tsv/.json/compressed, GLUE-style split names, header-less CSVs,
joined text columns, messy CSVs (BOM, quoted newlines, "NA" texts, other separators and encodings),
and rows without text or label: counted, reported, refused above 5% of a split unless allowed."""

from __future__ import annotations

import gzip
import json
import logging

import pandas as pd
import pytest
from helpers import data_settings, make_frame, write_frame

from textbench.core.data import load, load_raw, prepare
from textbench.core.errors import UsageError


def error_of(settings) -> str:
    with pytest.raises(UsageError) as info:
        load(settings)
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


def gappy_csv(path, n=300, no_label=25, empty_text=15, seed=3):
    """A CSV of ``n`` rows: the first ``no_label`` have an empty label, the next ``empty_text`` an empty
    (or blank) text; labels are 0/1 written as "0"/"1"."""
    df = make_frame(n, seed=seed).astype({"label": object})
    df.loc[: no_label - 1, "label"] = ""
    df.loc[no_label : no_label + empty_text - 1, "text"] = ["", "   "] * (empty_text // 2) + [""] * (
        empty_text % 2
    )
    df.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- dropped rows


def test_dropping_more_than_5_percent_is_refused_with_the_counts(tmp_path, tiny_tokenizer_dir):
    path = gappy_csv(tmp_path / "gappy.csv")
    message = error_of(data_settings(path, tiny_tokenizer_dir, tmp_path / "cache"))
    assert "40 of 300 rows (13.3%)" in message
    assert "25 without a label and 15 with an empty text" in message
    assert "--drop-invalid" in message
    assert not (tmp_path / "cache").exists()


def test_drop_invalid_drops_counts_and_says_so_once(tmp_path, tiny_tokenizer_dir, caplog):
    path = gappy_csv(tmp_path / "gappy.csv")
    settings = data_settings(path, tiny_tokenizer_dir, tmp_path / "cache", drop_invalid=True)
    with caplog.at_level(logging.WARNING, logger="textbench.core.data"):
        data = prepare(settings)
    assert sum(data.sizes.values()) == 260
    assert data.describe()["dropped_rows"] == {"train": {"no label": 25, "empty text": 15}}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert (
        "25 without a label" in warnings[0]
        and "15 with an empty text" in warnings[0]
        and "300" in warnings[0]
    )
    assert data.label_names == ["0", "1"]  # never "0.0", "1.0"


@pytest.mark.parametrize(("bad", "refused"), [(15, False), (16, True)])
def test_the_limit_is_5_percent_of_a_split(tmp_path, tiny_tokenizer_dir, bad, refused):
    path = gappy_csv(tmp_path / "gappy.csv", no_label=bad, empty_text=0)
    settings = data_settings(path, tiny_tokenizer_dir, tmp_path / "cache")
    if refused:
        assert f"{bad} of 300 rows" in error_of(settings)
    else:
        assert load(settings).dropped == {"train": {"no label": 15, "empty text": 0}}


def test_a_clean_dataset_drops_nothing(tiny_data):
    assert tiny_data.describe()["dropped_rows"] == {}


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_whole_number_labels_stay_integers_with_missing_values(tmp_path, tiny_tokenizer_dir, fmt):
    df = make_frame(100, seed=4).astype({"label": "float64"})
    df.loc[:2, "label"] = None  # a float column in pandas: 0.0, 1.0, NaN
    path = write_frame(df, tmp_path / f"labels.{fmt}")
    data = load(data_settings(path, tiny_tokenizer_dir, tmp_path / "cache"))
    assert data.label_names == ["0", "1"]
    assert sum(data.sizes.values()) == 97


def test_string_labels_lose_surrounding_whitespace(tmp_path, tiny_tokenizer_dir):
    df = make_frame(100, seed=5, string_labels=True)
    df["label"] = [
        f" {v}" if i % 3 == 0 else f"{v}\t" if i % 3 == 1 else v for i, v in enumerate(df["label"])
    ]
    path = write_frame(df, tmp_path / "spaced.csv")
    frames, _ = load_raw(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert sorted(frames["train"]["label"].unique()) == ["negative", "positive"]


# ---------------------------------------------------------------- formats


def test_tsv_reads_like_csv(tmp_path, tiny_tokenizer_dir):
    train, test = make_frame(120, seed=6), make_frame(40, seed=7)
    (tmp_path / "tsv").mkdir()
    for name, df in (("train", train), ("test", test)):
        df.to_csv(tmp_path / "tsv" / f"{name}.tsv", sep="\t", index=False)
    frames, info = load_raw(data_settings(tmp_path / "tsv", tiny_tokenizer_dir, tmp_path))
    assert frames["train"]["text"].tolist() == train["text"].tolist()
    assert frames["test"]["label"].tolist() == test["label"].tolist()
    assert info["origin"] == {"train": "train.tsv", "test": "test.tsv"}


@pytest.mark.parametrize("name", ["validation", "valid", "dev"])
def test_a_given_validation_split_is_used_not_carved(tmp_path, tiny_tokenizer_dir, name):
    train, dev, test = make_frame(200, seed=8), make_frame(30, seed=9), make_frame(50, seed=10)
    folder = tmp_path / "glue"
    for split, df in (("train", train), (name, dev), ("test", test)):
        write_frame(df, folder / f"{split}.csv")
    data = load(data_settings(folder, tiny_tokenizer_dir, tmp_path, validation_fraction=0.3))
    assert data.sizes == {"train": 200, "validation": 30, "test": 50}
    assert set(data.frames["validation"]["text"]) == set(dev["text"])
    assert set(data.frames["train"]["text"]) == set(train["text"])
    described = data.describe()
    assert described["validation_from"] == f"{name}.csv" and described["test_from"] == "test.csv"


def test_carved_splits_say_what_they_were_carved_from(tiny_data_dir, tiny_tokenizer_dir, tmp_path):
    described = load(data_settings(tiny_data_dir, tiny_tokenizer_dir, tmp_path)).describe()  # not a session
    assert described["validation_from"] == "carved from train (0.1 of train, stratified, seeded)"  # fixture:
    assert described["test_from"] == "test.parquet"  # mutation testing attributes only a test's own calls


def test_a_parser_error_without_a_message_still_reads_as_one_clean_line(
    tmp_path, tiny_tokenizer_dir, monkeypatch
):
    def silent_failure(*args, **kwargs):
        raise ValueError()

    write_frame(make_frame(50, seed=1), tmp_path / "train.parquet")
    monkeypatch.setattr(pd, "read_parquet", silent_failure)
    message = error_of(data_settings(tmp_path / "train.parquet", tiny_tokenizer_dir, tmp_path))
    assert message == (
        f"cannot read {tmp_path / 'train.parquet'}: ValueError: check that it is a valid .parquet file"
    )


def test_an_unlabelled_test_file_is_replaced_by_a_carved_split(tmp_path, tiny_tokenizer_dir, caplog):
    """GLUE's test.tsv has no label column: it cannot score anything, so a labelled test split is carved."""
    folder = tmp_path / "sst"
    train, dev = make_frame(200, seed=11), make_frame(30, seed=12)
    folder.mkdir()
    for split, df in (
        ("train", train),
        ("dev", dev),
        ("test", make_frame(40, seed=13).drop(columns="label")),
    ):
        df.to_csv(folder / f"{split}.tsv", sep="\t", index=False)
    with caplog.at_level(logging.WARNING, logger="textbench.core.data"):
        data = load(data_settings(folder, tiny_tokenizer_dir, tmp_path, test_fraction=0.2))
    assert data.sizes == {"train": 160, "validation": 30, "test": 40}
    assert set(data.frames["test"]["text"]) <= set(train["text"])
    assert "test.tsv has no labels" in data.describe()["test_from"]
    assert any("test.tsv has no labels" in r.getMessage() for r in caplog.records)


def test_no_header_with_column_numbers_and_joined_text(tmp_path, tiny_tokenizer_dir):
    df = make_frame(120, seed=14)
    headerless = pd.DataFrame(
        {"label": df["label"], "title": [f"title {i}" for i in range(120)], "body": df["text"]}
    )
    path = tmp_path / "plain.csv"
    headerless.to_csv(path, index=False, header=False)
    settings = data_settings(
        path, tiny_tokenizer_dir, tmp_path, no_header=True, text_column="1,2", label_column="0"
    )
    frames, _ = load_raw(settings)
    assert frames["train"]["text"].tolist() == [f"title {i} {t}" for i, t in enumerate(df["text"])]
    assert frames["train"]["label"].tolist() == df["label"].tolist()

    detected, _ = load_raw(data_settings(path, tiny_tokenizer_dir, tmp_path))  # no header row: detected
    assert detected["train"].equals(frames["train"])
    message = error_of(data_settings(path, tiny_tokenizer_dir, tmp_path, text_column="body"))
    assert "--no-header" in message  # the first row is data: a column name cannot be found
    message = error_of(data_settings(path, tiny_tokenizer_dir, tmp_path, no_header=True))
    assert "0-based column numbers" in message
    message = error_of(
        data_settings(path, tiny_tokenizer_dir, tmp_path, no_header=True, text_column="5", label_column="0")
    )
    assert "3 columns" in message and "from 0 to 2" in message


def test_joined_columns_by_name_skip_empty_parts(tmp_path, tiny_tokenizer_dir):
    df = pd.DataFrame(
        {
            "title": ["Great", "", "Bad"] * 20,
            "body": ["fun film", "awful film", None] * 20,
            "label": [1, 0, 0] * 20,
        }
    )
    path = write_frame(df, tmp_path / "joined.parquet")
    frames, _ = load_raw(data_settings(path, tiny_tokenizer_dir, tmp_path, text_column="title,body"))
    assert frames["train"]["text"].tolist()[:3] == ["Great fun film", "awful film", "Bad"]


def test_a_broken_jsonl_line_is_named_by_its_number(tmp_path, tiny_tokenizer_dir):
    lines = [json.dumps({"text": f"text {i}", "label": i % 2}) for i in range(10)]
    lines[6] = '{"text": "unterminated, "label": 1}'
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n")
    message = error_of(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert "line 7" in message and "broken.jsonl" in message


def test_json_array_json_lines_and_a_bom(tmp_path, tiny_tokenizer_dir):
    df = make_frame(60, seed=15)
    records = df.to_dict("records")
    (tmp_path / "array.json").write_text(json.dumps(records))
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(r) for r in records))
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps(r) for r in records).encode())
    for name in ("array.json", "lines.json", "bom.jsonl"):
        frames, _ = load_raw(data_settings(tmp_path / name, tiny_tokenizer_dir, tmp_path))
        assert frames["train"]["text"].tolist() == df["text"].tolist(), name


def test_json_objects_of_columns_and_a_wrapped_array(tmp_path, tiny_tokenizer_dir):
    """The other JSON shapes exports use: {"text": [...], "label": [...]} and {"data": [...], "version": 1};
    anything else (an array of numbers, two arrays of objects, broken JSON) is one error naming the fix."""
    df = make_frame(40, seed=16)
    records = df.to_dict("records")
    shapes = {
        "columns.json": {"text": df["text"].tolist(), "label": df["label"].tolist()},
        "wrapped.json": {"version": 1, "data": records, "tags": []},
    }
    for name, value in shapes.items():
        (tmp_path / name).write_text(json.dumps(value))
        frames, _ = load_raw(data_settings(tmp_path / name, tiny_tokenizer_dir, tmp_path))
        assert frames["train"]["text"].tolist() == df["text"].tolist(), name
        assert frames["train"]["label"].tolist() == df["label"].tolist(), name
    bad = {
        "numbers.json": "expected an array of objects",
        "mixed.json": "expected an array of objects",
        "broken.json": "line 2 is not valid JSON",
        "two.json": "no column 'text' (columns: a, b)",
    }
    texts = {
        "numbers.json": "[1, 2, 3]",
        "mixed.json": json.dumps([records[0], 5]),
        "broken.json": '[{"text": "a", "label": 1},\n {"text": }]',
        "two.json": json.dumps({"a": records[:20], "b": records[20:]}),
    }  # two tables: columns a and b
    for name, expected in bad.items():
        (tmp_path / name).write_text(texts[name])
        message = error_of(data_settings(tmp_path / name, tiny_tokenizer_dir, tmp_path))
        assert expected in message, message
        assert name in message or name == "two.json", message


@pytest.mark.parametrize(
    ("header", "headerless"),
    [
        (["label", "text"], False),
        (["0", "a fine film"], True),
        (["-1", "bad"], True),
        (["1.5", "ok"], True),
        (["x" * 40, "label"], False),
        (["x" * 41, "label"], True),
        (["1.2.3", "v"], False),
        (["-", "v"], False),
    ],
)
def test_a_header_row_that_looks_like_data_suggests_no_header(
    tmp_path, tiny_tokenizer_dir, header, headerless
):
    """A missing column in a file whose header is a number or a long sentence: the error suggests
    --no-header; a plain header does not get that hint (40 characters is still a header)."""
    path = tmp_path / "file.csv"
    path.write_text(",".join(header) + "\n" + "\n".join(f"{i % 2},some text {i}" for i in range(30)) + "\n")
    message = error_of(data_settings(path, tiny_tokenizer_dir, tmp_path, text_column="review"))
    assert ("--no-header" in message) == headerless, message


def test_a_file_neither_utf8_nor_cp1252_is_read_as_latin1_and_each_step_is_named(
    tmp_path, tiny_tokenizer_dir, caplog
):
    """0x81 and 0x9d are undefined in cp1252 and invalid UTF-8: the last resort is latin-1, and the
    warnings say which file was not which encoding."""
    rows = [(f"caf\xe9 number {i} \x81\x9d", i % 2) for i in range(40)]
    path = tmp_path / "legacy.csv"
    path.write_bytes(("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows)).encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="textbench.core.data"):
        frames, _ = load_raw(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert frames["train"]["text"].tolist()[:2] == [rows[0][0], rows[1][0]]
    said = [r.getMessage() for r in caplog.records]
    assert "legacy.csv is not utf-8-sig text: trying the next encoding" in said
    assert "legacy.csv is not cp1252 text: trying the next encoding" in said


def test_json_lines_skip_blank_lines_and_name_a_line_that_is_not_an_object(tmp_path, tiny_tokenizer_dir):
    lines = [json.dumps({"text": f"text {i}", "label": i % 2}) for i in range(30)]
    path = tmp_path / "gaps.jsonl"
    path.write_text("\n".join(lines[:10]) + "\n\n   \n" + "\n".join(lines[10:]) + "\n")
    frames, _ = load_raw(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert frames["train"]["text"].tolist() == [f"text {i}" for i in range(30)]
    lines[2] = "[1, 2]"
    path.write_text("\n".join(lines) + "\n")
    message = error_of(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert "gaps.jsonl: line 3 is a JSON list, not an object" in message
    assert 'write one {"text": ..., "label": ...} object per line' in message


def test_a_messy_csv_is_read_as_written(tmp_path, tiny_tokenizer_dir):
    """BOM, a quoted newline, texts that pandas would take for missing values, CRLF line ends."""
    rows = [("NA", 0), ("null", 1), ('He said ""great""', 1), ("line one\nline two", 0)] * 15
    body = "text,label\r\n" + "".join(f'"{t}",{label}\r\n' for t, label in rows)
    path = tmp_path / "messy.csv"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    frames, info = load_raw(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert frames["train"]["text"].tolist()[:4] == ["NA", "null", 'He said "great"', "line one\nline two"]
    assert info["dropped"] == {}


def test_compressed_semicolon_and_cp1252_files(tmp_path, tiny_tokenizer_dir):
    df = make_frame(60, seed=16)
    with gzip.open(tmp_path / "reviews.csv.gz", "wt", encoding="utf-8") as handle:
        df.to_csv(handle, index=False)
    df.to_csv(tmp_path / "semi.csv", sep=";", index=False)
    accented = df.assign(text=df["text"] + " café – “quoted”")
    accented.to_csv(tmp_path / "windows.csv", index=False, encoding="cp1252")
    with gzip.open(tmp_path / "semi.csv.gz", "wt", encoding="utf-8") as handle:  # sniffed through the gzip
        df.to_csv(handle, sep=";", index=False)
    with gzip.open(tmp_path / "lines.JSONL.GZ", "wt", encoding="utf-8") as handle:  # suffixes in any case
        handle.write("\n".join(json.dumps(r) for r in df.to_dict("records")))
    for name, expected in (
        ("reviews.csv.gz", df),
        ("semi.csv", df),
        ("windows.csv", accented),
        ("semi.csv.gz", df),
        ("lines.JSONL.GZ", df),
    ):
        frames, _ = load_raw(data_settings(tmp_path / name, tiny_tokenizer_dir, tmp_path))
        assert frames["train"]["text"].tolist() == expected["text"].tolist(), name


def test_column_names_match_despite_case_and_spaces(tmp_path, tiny_tokenizer_dir):
    df = make_frame(60, seed=17).rename(columns={"text": " Review ", "label": "Sentiment"})
    path = write_frame(df, tmp_path / "kaggle.csv")
    frames, _ = load_raw(
        data_settings(path, tiny_tokenizer_dir, tmp_path, text_column="review", label_column="sentiment")
    )
    assert frames["train"]["text"].tolist() == df[" Review "].tolist()


# ---------------------------------------------------------------- a hub dataset (online users)


def hub_dict(splits: dict[str, pd.DataFrame]):
    import datasets

    return datasets.DatasetDict(
        {name: datasets.Dataset.from_pandas(df, preserve_index=False) for name, df in splits.items()}
    )


def test_a_hub_dataset_maps_its_split_names_and_ignores_the_others(tmp_path, tiny_tokenizer_dir, monkeypatch):
    """What ``load_dataset("imdb")`` gives online: train/test plus an unlabelled 'unsupervised' split;
    GLUE-style sets name their validation split 'validation' or 'dev'."""
    import datasets

    import textbench.core.data

    train, dev, test = make_frame(200, seed=21), make_frame(30, seed=22), make_frame(50, seed=23)
    unsupervised = make_frame(40, seed=24).assign(label=-1)
    asked = []
    monkeypatch.setattr(textbench.core.data, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda name, *a, **k: (
            asked.append(name)
            or hub_dict({"train": train, "dev": dev, "test": test, "unsupervised": unsupervised})
        ),
    )
    data = load(data_settings("someone/reviews", tiny_tokenizer_dir, tmp_path))
    assert asked == ["someone/reviews"]
    assert data.sizes == {"train": 200, "validation": 30, "test": 50}
    assert (
        data.describe()["validation_from"] == "hub split 'dev'"
        and data.describe()["test_from"] == "hub split 'test'"
    )
    assert set(data.frames["test"]["text"]) == set(test["text"])


def test_a_hub_dataset_without_a_train_split_names_the_splits_it_has(
    tmp_path, tiny_tokenizer_dir, monkeypatch
):
    import datasets

    import textbench.core.data

    monkeypatch.setattr(textbench.core.data, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda *a, **k: hub_dict({"test": make_frame(20, seed=1), "extra": make_frame(20, seed=2)}),
    )
    assert error_of(data_settings("someone/reviews", tiny_tokenizer_dir, tmp_path)) == (
        "hub dataset 'someone/reviews' has no train split (splits: test, extra)"
    )

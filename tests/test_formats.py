"""Data as people keep it (core.formats): files without extension or .txt with a sniffed separator,
headerless files whose first row is data, fastText and "label text" lines, split files named
train/val/dev/test whatever their extension, classes.txt / --label-names; every ambiguity is one
error naming the option that settles it. Expected rows come from the frames the files were written
from, never from the reader."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd
import pytest
from helpers import data_settings, make_frame

from textbench.core.data import load, load_raw
from textbench.core.errors import UsageError

SHARED = Path(os.environ.get("TEXTBENCH_DATA", "/work/shared/data"))


def error_of(settings) -> str:
    with pytest.raises(UsageError) as info:
        load(settings)
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


def frame(n=60, seed=0, labels=("ham", "spam")):
    df = make_frame(n, seed=seed)
    df["label"] = [labels[v % len(labels)] for v in df["label"]]
    return df


def test_no_extension_tab_separated_headerless_with_quotes(tmp_path, tiny_tokenizer_dir):
    """SMSSpamCollection's layout: label<TAB>text, no header, a text may start with a quote."""
    df = frame(80, seed=1)
    df.loc[3, "text"] = '"Quoted" start, with a comma; and a semicolon'
    path = tmp_path / "Collection"
    path.write_text("".join(f"{lab}\t{t}\n" for t, lab in zip(df.text, df.label, strict=True)))
    frames, _ = load_raw(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert frames["train"]["text"].tolist() == df["text"].tolist()
    assert frames["train"]["label"].tolist() == df["label"].tolist()


@pytest.mark.parametrize("sep", [";", "|", "\t"])
def test_split_files_named_train_val_test_txt_with_a_header(tmp_path, tiny_tokenizer_dir, sep):
    """emotion's layout: train.txt / val.txt / test.txt, ';'-separated, header text;label_name."""
    folder = tmp_path / "emo"
    folder.mkdir()
    parts = {"train": frame(90, 2), "val": frame(30, 3), "test": frame(30, 4)}
    for split, df in parts.items():
        body = "".join(f"{t}{sep}{lab}\n" for t, lab in zip(df.text, df.label, strict=True))
        (folder / f"{split}.txt").write_text(f"text{sep}label_name\n" + body)
    frames, info = load_raw(data_settings(folder, tiny_tokenizer_dir, tmp_path))
    assert info["origin"] == {"train": "train.txt", "validation": "val.txt", "test": "test.txt"}
    for split, name in (("train", "train"), ("validation", "val"), ("test", "test")):
        assert frames[split]["text"].tolist() == parts[name]["text"].tolist()
        assert frames[split]["label"].tolist() == parts[name]["label"].tolist()


def test_split_files_without_extension_and_dev(tmp_path, tiny_tokenizer_dir):
    folder = tmp_path / "plain"
    folder.mkdir()
    train, dev = frame(80, 5), frame(20, 6)
    for name, df in (("train", train), ("dev", dev)):
        (folder / name).write_text("".join(f"{lab}\t{t}\n" for t, lab in zip(df.text, df.label, strict=True)))
    frames, info = load_raw(data_settings(folder, tiny_tokenizer_dir, tmp_path))
    assert info["origin"] == {"train": "train", "validation": "dev"}
    assert frames["validation"]["label"].tolist() == dev["label"].tolist()


def test_headerless_quoted_csv_with_classes_txt(tmp_path, tiny_tokenizer_dir):
    """AG News's layout: "class(1-4)","title","description", no header; classes.txt names 1..4."""
    folder = tmp_path / "ag"
    folder.mkdir()
    df = make_frame(120, seed=7)
    klass = [1 + i % 4 for i in range(120)]
    titles = [f"Title, number {i}" for i in range(120)]
    with open(folder / "test.csv", "w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
        writer.writerows(zip(klass, titles, df["text"], strict=True))
    names = ["World", "Sports", "Business", "Sci/Tech"]
    (folder / "classes.txt").write_text("\n".join(names) + "\n")
    frames, _ = load_raw(data_settings(folder / "test.csv", tiny_tokenizer_dir, tmp_path))
    assert frames["train"]["text"].tolist() == [f"{a} {b}" for a, b in zip(titles, df["text"], strict=True)]
    assert frames["train"]["label"].tolist() == [names[k - 1] for k in klass]
    data = load(data_settings(folder / "test.csv", tiny_tokenizer_dir, tmp_path))
    assert data.label_names == sorted(names)
    given = ["w", "s", "b", "t"]  # --label-names wins over classes.txt
    frames, _ = load_raw(
        data_settings(folder / "test.csv", tiny_tokenizer_dir, tmp_path, label_names=",".join(given))
    )
    assert frames["train"]["label"].tolist() == [given[k - 1] for k in klass]
    message = error_of(data_settings(folder / "test.csv", tiny_tokenizer_dir, tmp_path, label_names="a,b,c"))
    assert "--label-names names 3 classes but the labels are 4 values (1, 2, 3, 4)" in message


def test_zero_based_labels_with_label_names(tmp_path, tiny_tokenizer_dir):
    df = make_frame(60, seed=8)  # labels 0/1
    path = tmp_path / "reviews.csv"
    df.to_csv(path, index=False)
    frames, _ = load_raw(data_settings(path, tiny_tokenizer_dir, tmp_path, label_names="neg,pos"))
    assert frames["train"]["label"].tolist() == [["neg", "pos"][v] for v in df["label"]]


def test_fasttext_lines_and_several_labels_refused(tmp_path, tiny_tokenizer_dir):
    df = frame(60, 9, labels=("pos", "neg"))
    path = tmp_path / "train.ft"
    lines = [f"__label__{lab} {t}" for t, lab in zip(df.text, df.label, strict=True)]
    path = tmp_path / "reviews.txt"
    path.write_text("\n".join(lines) + "\n")
    frames, _ = load_raw(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert frames["train"]["text"].tolist() == df["text"].tolist()
    assert frames["train"]["label"].tolist() == df["label"].tolist()
    lines[4] = "__label__pos __label__neg two labels here"
    path.write_text("\n".join(lines) + "\n")
    message = error_of(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert "line 5 has several labels" in message and "one __label__ per line" in message


def test_label_space_text_lines(tmp_path, tiny_tokenizer_dir):
    """TREC/SST style: a label token, one space, then the text (which has commas and semicolons)."""
    df = frame(60, 10, labels=("NUM:dist", "LOC:city", "HUM:ind"))
    df["text"] = [t + ", really" * (i % 2) + "; yes" * (i % 3 == 0) for i, t in enumerate(df["text"])]
    path = tmp_path / "questions.txt"
    path.write_text("".join(f"{lab} {t}\n" for t, lab in zip(df.text, df.label, strict=True)))
    frames, _ = load_raw(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert frames["train"]["text"].tolist() == df["text"].tolist()
    assert frames["train"]["label"].tolist() == df["label"].tolist()


def test_ambiguous_separator_names_the_option_and_the_option_settles_it(tmp_path, tiny_tokenizer_dir):
    rows = [f"{i % 2}\tword{i};x{i}" for i in range(40)]  # tab gives 2 columns, ';' gives 2 as well
    path = tmp_path / "both.txt"
    path.write_text("\n".join(rows) + "\n")
    message = error_of(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert "cannot tell how both.txt is separated" in message and "--separator" in message
    frames, _ = load_raw(data_settings(path, tiny_tokenizer_dir, tmp_path, separator="tab"))
    assert frames["train"]["text"].tolist() == [f"word{i};x{i}" for i in range(40)]
    assert frames["train"]["label"].tolist() == [i % 2 for i in range(40)]


def test_headerless_with_two_label_like_columns_names_the_options(tmp_path, tiny_tokenizer_dir):
    df = make_frame(60, seed=11)
    path = tmp_path / "two.csv"
    pd.DataFrame({"a": df["label"], "b": [i % 3 for i in range(60)], "c": df["text"]}).to_csv(
        path, index=False, header=False
    )
    message = error_of(data_settings(path, tiny_tokenizer_dir, tmp_path))
    assert "columns 0, 1 all look like the label" in message and "--label-column" in message
    frames, _ = load_raw(
        data_settings(path, tiny_tokenizer_dir, tmp_path, no_header=True, text_column="2", label_column="0")
    )
    assert frames["train"]["label"].tolist() == df["label"].tolist()


@pytest.mark.skipif(not (SHARED / "sms_spam").is_dir(), reason="the shared data is not on this machine")
def test_the_shared_sets_load_as_they_come():
    """The counts PROVENANCE.md states for the three sets kept in their sources' formats."""
    from textbench.core.settings import DataSettings

    def counts(name):
        frames, _ = load_raw(DataSettings(dataset=str(SHARED / name)))
        return {s: df["label"].value_counts().to_dict() for s, df in frames.items()}

    assert counts("sms_spam/SMSSpamCollection") == {"train": {"ham": 4827, "spam": 747}}
    emotion = counts("emotion")
    assert [sum(emotion[s].values()) for s in ("train", "validation", "test")] == [16000, 2000, 2000]
    assert set(emotion["train"]) == {"anger", "fear", "joy", "love", "sadness", "surprise"}
    assert counts("ag_news/test.csv") == {
        "train": dict.fromkeys(["World", "Sports", "Business", "Sci/Tech"], 1900)
    }

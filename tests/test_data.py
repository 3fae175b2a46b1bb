"""trainc.runtime.data: reading, splitting, label encoding, normalisation and E5xx diagnostics."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from trainc.compiler import ir
from trainc.runtime.data import DataError, Dataset, Normalizer, load_data

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "examples" / "data"

SRC_SPAN = ir.Span("t.train", 3, 5, 3, 40)
SPLIT_SPAN = ir.Span("t.train", 4, 5, 4, 30)
DATA_SPAN = ir.Span("t.train", 2, 1, 9, 2)
VAL_SPAN = ir.Span("t.train", 5, 5, 5, 40)


def src(path, kind="csv", span=SRC_SPAN, **args) -> ir.Source:
    return ir.Source(kind=kind, path=str(path), args=tuple(args.items()), span=span)


def data(
    source=None,
    *,
    train=0.8,
    val=0.2,
    stratify=False,
    normalize="none",
    task=ir.Task.classification,
    train_src=None,
    val_src=None,
    target_normalize="none",
) -> ir.Data:
    split = ir.Split(train=train, val=val, stratify=stratify, span=SPLIT_SPAN) if source is not None else None
    return ir.Data(
        source=source,
        split=split,
        train=train_src,
        val=val_src,
        normalize=normalize,
        target_normalize=target_normalize,
        batch=32,
        shuffle=True,
        task=task,
        span=DATA_SPAN,
    )


def digits(**kw) -> ir.Data:
    return data(src("digits.csv", target="label"), **kw)


def diabetes(**kw) -> ir.Data:
    return data(src("diabetes.csv", target="progression"), task=ir.Task.regression, **kw)


@pytest.fixture(scope="module")
def digits_raw():
    table = np.loadtxt(DATA_DIR / "digits.csv", delimiter=",", skiprows=1)
    return table[:, :64], table[:, 64].astype(int)


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text)
    return path


def load_error(d: ir.Data, base=DATA_DIR, seed=0) -> DataError:
    with pytest.raises(DataError) as info:
        load_data(d, base, seed)
    assert str(info.value) == info.value.diagnostic.message
    return info.value


def rows_of(x_split: np.ndarray, x_all: np.ndarray) -> np.ndarray:
    """Index in x_all of every row of x_split (the 1,797 digits images are all distinct)."""
    lookup = {row.tobytes(): i for i, row in enumerate(np.asarray(x_all, np.float32))}
    assert len(lookup) == len(x_all)
    return np.array([lookup[row.tobytes()] for row in np.asarray(x_split, np.float32)])


# ---------------------------------------------------------------------------------------------
# The shipped datasets
# ---------------------------------------------------------------------------------------------


def test_digits_csv_loads(digits_raw):
    ds = load_data(digits(train=0.75, val=0.25), DATA_DIR, seed=0)
    assert isinstance(ds, Dataset)
    assert len(ds.x_train) + len(ds.x_val) == 1797
    assert len(ds.x_train) == 1348  # round(0.75 * 1797)
    assert ds.feature_shape == (64,)
    assert ds.x_train.dtype == np.float32 and ds.x_val.dtype == np.float32
    assert ds.y_train.dtype == np.int32 and ds.y_train.shape == (1348,)
    assert ds.n_classes == 10
    assert ds.classes == tuple(range(10))
    assert ds.feature_names == tuple(f"p{i}" for i in range(64)) and len(ds.feature_names) == 64
    # no normalisation: the pixels come through as written, rows with their own labels
    x_all, y_all = digits_raw
    assert ds.x_train.min() == 0 and ds.x_train.max() == 16
    idx = rows_of(ds.x_train, x_all)
    np.testing.assert_array_equal(ds.y_train, y_all[idx])
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_val]), minlength=10)
    np.testing.assert_array_equal(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])


def test_diabetes_regression_targets():
    ds = load_data(diabetes(train=0.8, val=0.2), DATA_DIR, seed=3)
    assert ds.classes is None and ds.n_classes is None
    assert ds.y_train.shape == (354, 1) and ds.y_val.shape == (88, 1)
    assert ds.y_train.dtype == np.float32
    assert ds.feature_shape == (10,)
    assert ds.feature_names == ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
    y = np.concatenate([ds.y_train, ds.y_val])[:, 0]
    assert y.min() == 25 and y.max() == 346
    assert float(y.sum()) == pytest.approx(67243.0)  # the sum of all 442 progression values


def test_multi_target_regression_and_feature_subset():
    d = data(
        src("diabetes.csv", target=("progression", "s6"), features=("age", "bmi", "bp")),
        task=ir.Task.regression,
    )
    ds = load_data(d, DATA_DIR, seed=0)
    assert ds.y_train.shape == (354, 2)
    assert ds.feature_names == ("age", "bmi", "bp")
    assert ds.feature_shape == (3,)
    raw = np.loadtxt(DATA_DIR / "diabetes.csv", delimiter=",", skiprows=1)
    # every (progression, s6) pair in train appears in the file next to the same age/bmi/bp
    pairs = {tuple(r) for r in raw[:, [0, 2, 3, 10, 9]].astype(np.float32).tolist()}
    got = np.concatenate([ds.x_train, ds.y_train], axis=1).tolist()
    assert all(tuple(r) in pairs for r in got)


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------


def test_stratified_split_keeps_class_proportions():
    ds = load_data(digits(train=0.7, val=0.3, stratify=True), DATA_DIR, seed=11)
    per_class = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    n_train = np.bincount(ds.y_train, minlength=10)
    n_val = np.bincount(ds.y_val, minlength=10)
    assert np.all(np.abs(n_train - 0.7 * per_class) <= 1)
    assert np.all(np.abs(n_val - 0.3 * per_class) <= 1)
    np.testing.assert_array_equal(n_train + n_val, per_class)
    # the train split is shuffled, not grouped by class
    assert len(set(ds.y_train[:20].tolist())) > 3


def test_split_fractions_may_leave_examples_unused():
    ds = load_data(digits(train=0.5, val=0.1, stratify=True), DATA_DIR, seed=0)
    per_class = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    assert np.all(np.abs(np.bincount(ds.y_train, minlength=10) - 0.5 * per_class) <= 1)
    assert np.all(np.abs(np.bincount(ds.y_val, minlength=10) - 0.1 * per_class) <= 1)
    ds = load_data(digits(train=0.5, val=0.1), DATA_DIR, seed=0)
    assert (len(ds.y_train), len(ds.y_val)) == (899, 179)  # round(898.5), round(1078.2) - 899


def test_split_is_seed_deterministic():
    for stratify in (False, True):
        a = load_data(digits(stratify=stratify), DATA_DIR, seed=7)
        b = load_data(digits(stratify=stratify), DATA_DIR, seed=7)
        c = load_data(digits(stratify=stratify), DATA_DIR, seed=8)
        np.testing.assert_array_equal(a.x_train, b.x_train)
        np.testing.assert_array_equal(a.y_val, b.y_val)
        assert not np.array_equal(a.x_train, c.x_train)
        assert not np.array_equal(a.y_train, c.y_train)


def test_train_and_val_are_disjoint(digits_raw):
    x_all, _ = digits_raw
    ds = load_data(digits(train=0.6, val=0.4), DATA_DIR, seed=1)
    idx_train, idx_val = rows_of(ds.x_train, x_all), rows_of(ds.x_val, x_all)
    assert (len(idx_train), len(idx_val)) == (1078, 719)
    assert not set(idx_train.tolist()) & set(idx_val.tolist())
    assert len(set(idx_train.tolist()) | set(idx_val.tolist())) == 1797


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


def test_standardisation_uses_training_statistics_only():
    plain = load_data(diabetes(), DATA_DIR, seed=5)
    ds = load_data(diabetes(normalize="standard"), DATA_DIR, seed=5)
    raw_train, raw_val = plain.x_train.astype(np.float64), plain.x_val.astype(np.float64)
    mean, std = raw_train.mean(axis=0), raw_train.std(axis=0)  # population std, train rows only
    assert ds.normalizer.kind == "standard"
    assert ds.normalizer.shift.dtype == np.float32 and ds.normalizer.shift.shape == (10,)
    np.testing.assert_allclose(ds.normalizer.shift, mean, rtol=1e-6)
    np.testing.assert_allclose(ds.normalizer.scale, std, rtol=1e-6)
    # not the statistics of all rows
    all_mean = np.concatenate([raw_train, raw_val]).mean(axis=0)
    assert not np.allclose(ds.normalizer.shift, all_mean, rtol=1e-6)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1, rtol=1e-4)
    # val uses the training statistics
    np.testing.assert_allclose(ds.x_val, (raw_val - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.normalizer.apply(raw_val), ds.x_val, rtol=1e-6)
    assert abs(ds.x_val.mean(axis=0)).max() > 1e-3


def test_standardisation_constant_feature_gets_scale_one():
    ds = load_data(digits(normalize="standard", stratify=True), DATA_DIR, seed=0)
    # p0 is 0 in every digits image
    assert ds.normalizer.shift[0] == 0 and ds.normalizer.scale[0] == 1
    assert np.all(ds.normalizer.scale > 0)
    assert np.all(np.isfinite(ds.x_train)) and np.all(np.isfinite(ds.x_val))


def test_minmax():
    plain = load_data(diabetes(), DATA_DIR, seed=2)
    ds = load_data(diabetes(normalize="minmax"), DATA_DIR, seed=2)
    lo, hi = plain.x_train.min(axis=0), plain.x_train.max(axis=0)
    np.testing.assert_allclose(ds.normalizer.shift, lo)
    np.testing.assert_allclose(ds.normalizer.scale, hi - lo, rtol=1e-6)
    np.testing.assert_allclose(ds.x_train.min(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(ds.x_train.max(axis=0), 1, atol=1e-6)
    np.testing.assert_allclose(ds.x_val, (plain.x_val - lo) / (hi - lo), rtol=1e-5, atol=1e-6)
    # sex is 1 or 2: min-max maps it to exactly 0 and 1
    assert set(np.unique(ds.x_train[:, 1]).tolist()) == {0.0, 1.0}


def test_none_normalizer_is_identity():
    ds = load_data(diabetes(), DATA_DIR, seed=0)
    n = ds.normalizer
    assert isinstance(n, Normalizer) and n.kind == "none"
    np.testing.assert_array_equal(n.shift, np.zeros(10, np.float32))
    np.testing.assert_array_equal(n.scale, np.ones(10, np.float32))
    x = np.arange(20, dtype=np.float64).reshape(2, 10)
    np.testing.assert_array_equal(n.apply(x), x.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# Other sources and layouts
# ---------------------------------------------------------------------------------------------


def test_npz_source(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4, 3)).astype(np.float32)
    y = np.repeat([3, 7], 25)
    np.savez(tmp_path / "d.npz", feats=x, labels=y)
    d = data(src("d.npz", kind="npz", x="feats", y="labels"), train=0.6, val=0.4, stratify=True)
    ds = load_data(d, tmp_path, seed=0)
    assert ds.feature_shape == (4, 3)
    assert ds.x_train.shape == (30, 4, 3) and ds.x_val.shape == (20, 4, 3)
    assert ds.classes == (3, 7) and ds.n_classes == 2
    assert ds.feature_names is None
    np.testing.assert_array_equal(np.bincount(ds.y_train), [15, 15])
    # rows keep their labels: class index 1 is label 7, rows 25.. in the file
    for xi, yi in zip(ds.x_train, ds.y_train):
        row = int(np.flatnonzero((x == xi).all(axis=(1, 2)))[0])
        assert yi == (row >= 25)


def test_npz_default_keys_regression(tmp_path):
    x = np.arange(40, dtype=np.float64).reshape(20, 2)
    np.savez(tmp_path / "r.npz", x=x, y=x.sum(axis=1))
    ds = load_data(data(src("r.npz", kind="npz"), task=ir.Task.regression, train=0.5, val=0.5), tmp_path, 0)
    assert ds.y_train.shape == (10, 1) and ds.y_train.dtype == np.float32
    np.testing.assert_allclose(ds.y_train[:, 0], ds.x_train.sum(axis=1))


def test_separate_train_and_val_files(tmp_path):
    write(tmp_path / "train.csv", "a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n")
    write(tmp_path / "val.csv", "b,a,label\n40,30,cat\n60,50,emu\n")  # columns in another order
    d = data(
        train_src=src("train.csv", target="label"),
        val_src=src("val.csv", span=VAL_SPAN, target="label"),
        normalize="standard",
    )
    ds = load_data(d, tmp_path, seed=0)
    assert ds.classes == ("cat", "dog", "emu")  # union of both files, sorted
    np.testing.assert_array_equal(ds.y_train, [0, 1, 0])
    np.testing.assert_array_equal(ds.y_val, [0, 2])
    assert ds.feature_names == ("a", "b")
    np.testing.assert_allclose(ds.normalizer.shift, [3, 4])
    np.testing.assert_allclose(ds.normalizer.scale, [np.std([1, 3, 5])] * 2, rtol=1e-6)
    np.testing.assert_allclose(ds.x_val, (np.array([[30, 40], [50, 60]]) - [3, 4]) / np.std([1, 3, 5]), rtol=1e-6)


def test_string_labels_and_numeric_label_order(tmp_path):
    write(tmp_path / "s.csv", "f,kind\n" + "".join(f"{i},{k}\n" for i, k in enumerate(["b", "a", "c"] * 4)))
    ds = load_data(data(src("s.csv", target="kind"), train=0.5, val=0.5, stratify=True), tmp_path, 0)
    assert ds.classes == ("a", "b", "c")
    for xi, yi in zip(ds.x_train[:, 0], ds.y_train):
        assert ["b", "a", "c"][int(xi) % 3] == ds.classes[yi]
    # integer labels sort numerically, not as text
    write(tmp_path / "n.csv", "f,y\n" + "".join(f"{i},{k}\n" for i, k in enumerate([10, 2, -1] * 4)))
    ds = load_data(data(src("n.csv", target="y"), train=0.5, val=0.5), tmp_path, 0)
    assert ds.classes == (-1, 2, 10)
    assert all(isinstance(c, int) for c in ds.classes)


def test_absolute_path(tmp_path):
    path = write(tmp_path / "abs.csv", "u,v\n1,0\n2,1\n3,0\n4,1\n")
    ds = load_data(data(src(path, target="v"), train=0.5, val=0.5), pathlib.Path("/nonexistent"), 0)
    assert len(ds.x_train) == 2 and ds.classes == (0, 1)


# ---------------------------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------------------------


def test_e501_file_not_found():
    e = load_error(data(src("digitz.csv", target="label")))
    d = e.diagnostic
    assert d.code == "E501" and d.span == SRC_SPAN and d.span.line == 3
    assert "digitz.csv" in d.message and "not found" in d.message


def test_e502_malformed_files(tmp_path):
    write(tmp_path / "ragged.csv", "a,b,y\n1,2,0\n3,4\n")
    d = load_error(data(src("ragged.csv", target="y")), tmp_path).diagnostic
    assert (d.code, d.span) == ("E502", SRC_SPAN)
    assert "line 3" in d.message and "2 fields" in d.message and "expected 3" in d.message

    write(tmp_path / "noheader.csv", "1,2,0\n3,4,1\n")
    d = load_error(data(src("noheader.csv", target="y")), tmp_path).diagnostic
    assert d.code == "E502" and "header" in d.message

    write(tmp_path / "empty.csv", "")
    d = load_error(data(src("empty.csv", target="y")), tmp_path).diagnostic
    assert d.code == "E502" and "empty" in d.message

    (tmp_path / "bin.csv").write_bytes(b"a,y\n\xff\xfe,1\n")
    d = load_error(data(src("bin.csv", target="y")), tmp_path).diagnostic
    assert d.code == "E502" and "UTF-8" in d.message

    write(tmp_path / "junk.npz", "this is not a zip file")
    d = load_error(data(src("junk.npz", kind="npz")), tmp_path).diagnostic
    assert (d.code, d.span) == ("E502", SRC_SPAN) and "npz" in d.message

    np.savez(tmp_path / "short.npz", x=np.zeros((5, 2)), y=np.zeros(4))
    d = load_error(data(src("short.npz", kind="npz")), tmp_path).diagnostic
    assert d.code == "E502" and "5 rows" in d.message and "4" in d.message


def test_e503_unknown_target_column_did_you_mean():
    d = load_error(data(src("digits.csv", target="lable"))).diagnostic
    assert (d.code, d.span) == ("E503", SRC_SPAN)
    assert "'lable'" in d.message
    assert d.help == "did you mean 'label'?"


def test_e503_unknown_feature_lists_columns():
    d = load_error(
        data(src("diabetes.csv", target="progression", features=("age", "zzz")), task=ir.Task.regression)
    ).diagnostic
    assert d.code == "E503" and "'zzz'" in d.message
    assert d.help is not None and "'age'" in d.help and "'progression'" in d.help


def test_e503_unknown_npz_key(tmp_path):
    np.savez(tmp_path / "k.npz", features=np.zeros((4, 2)), y=np.zeros(4))
    d = load_error(data(src("k.npz", kind="npz", x="featurs")), tmp_path).diagnostic
    assert (d.code, d.span) == ("E503", SRC_SPAN)
    assert d.help == "did you mean 'features'?"


def test_e503_val_file_missing_train_column(tmp_path):
    write(tmp_path / "tr.csv", "a,b,y\n1,2,0\n3,4,1\n")
    write(tmp_path / "va.csv", "a,c,y\n1,2,0\n")
    d = load_error(
        data(train_src=src("tr.csv", target="y"), val_src=src("va.csv", span=VAL_SPAN, target="y")), tmp_path
    ).diagnostic
    assert (d.code, d.span) == ("E503", VAL_SPAN)
    assert "'b'" in d.message and "va.csv" in d.message


def test_e504_non_numeric_value_names_file_row_and_column(tmp_path):
    write(tmp_path / "bad.csv", "a,b,y\n1,2,0\n3,oops,1\n")
    d = load_error(data(src("bad.csv", target="y")), tmp_path).diagnostic
    assert (d.code, d.span) == ("E504", SRC_SPAN)
    assert d.message == "'bad.csv' line 3, column 'b': expected a number, found 'oops'"


def test_e504_missing_values(tmp_path):
    write(tmp_path / "gap.csv", "a,b,y\n1,2,0\n3,4,1\n5,,1\n")
    d = load_error(data(src("gap.csv", target="y")), tmp_path).diagnostic
    assert d.code == "E504" and "line 4" in d.message and "column 'b'" in d.message and "missing" in d.message

    write(tmp_path / "nolabel.csv", "a,y\n1,0\n2,\n")
    d = load_error(data(src("nolabel.csv", target="y")), tmp_path).diagnostic
    assert d.code == "E504" and "line 3" in d.message and "column 'y'" in d.message

    write(tmp_path / "nan.csv", "a,y\n1,0.5\nnan,1.5\n")
    d = load_error(data(src("nan.csv", target="y"), task=ir.Task.regression), tmp_path).diagnostic
    assert d.code == "E504" and "line 3" in d.message and "'nan'" in d.message

    write(tmp_path / "badtarget.csv", "a,y\n1,0.5\n2,high\n")
    d = load_error(data(src("badtarget.csv", target="y"), task=ir.Task.regression), tmp_path).diagnostic
    assert d.code == "E504" and "column 'y'" in d.message and "'high'" in d.message


def test_e505_split_leaves_val_empty(tmp_path):
    write(tmp_path / "tiny.csv", "a,y\n1,0\n2,1\n3,0\n")
    d = load_error(data(src("tiny.csv", target="y"), train=0.9, val=0.1), tmp_path).diagnostic
    assert (d.code, d.span) == ("E505", SPLIT_SPAN)
    assert "val" in d.message and "3 examples" in d.message


def test_e505_bad_fractions_and_empty_file(tmp_path):
    d = load_error(digits(train=0.8, val=0.3)).diagnostic
    assert (d.code, d.span) == ("E505", SPLIT_SPAN) and "0.8" in d.message and "0.3" in d.message

    write(tmp_path / "hdr.csv", "a,y\n")
    d = load_error(data(src("hdr.csv", target="y")), tmp_path).diagnostic
    assert (d.code, d.span) == ("E505", SRC_SPAN) and "no data rows" in d.message


def test_a_class_with_one_example_cannot_be_stratified(tmp_path):
    rows = "".join(f"{i},{'a' if i < 9 else 'b'}\n" for i in range(10))
    write(tmp_path / "rare.csv", "f,y\n" + rows)
    err = load_error(data(src("rare.csv", target="y"), train=0.2, val=0.8, stratify=True), tmp_path)
    d = err.diagnostic
    assert d.code == "E505" and "class 'b' has a single example in 'rare.csv': too few to stratify" in d.message
    assert "stratify = false" in d.help
    for seed in range(3):  # without stratification it is one more example, wherever the permutation puts it
        ds = load_data(data(src("rare.csv", target="y"), train=0.2, val=0.8, stratify=False), tmp_path, seed)
        assert ds.classes == ("a", "b") and np.count_nonzero(ds.y_train == 1) + np.count_nonzero(ds.y_val == 1) == 1


def test_e506_other_problems(tmp_path):
    d = load_error(data(src("digits.csv", kind="parquet", target="label"))).diagnostic
    assert (d.code, d.span) == ("E506", SRC_SPAN) and "parquet" in d.message

    d = load_error(data(src("digits.csv", kind="cvs", target="label"))).diagnostic
    assert d.code == "E506" and d.help == "did you mean 'csv'?"

    d = load_error(data(src("digits.csv"))).diagnostic  # no target
    assert (d.code, d.span) == ("E506", SRC_SPAN) and "target" in d.message

    d = load_error(digits(normalize="standart")).diagnostic
    assert (d.code, d.span) == ("E506", DATA_SPAN) and d.help == "did you mean 'standard'?"

    d = load_error(data(src("digits.csv", target=("label", "p1")))).diagnostic
    assert d.code == "E506" and "exactly one target" in d.message

    d = load_error(data(train_src=src("digits.csv", target="label"))).diagnostic
    assert (d.code, d.span) == ("E506", SRC_SPAN) and "val" in d.message

    write(tmp_path / "tr.csv", "a,y\n1,0.5\n2,1.5\n")
    np.savez(tmp_path / "va.npz", x=np.zeros((2, 3)), y=np.zeros(2))
    d = load_error(
        data(
            train_src=src("tr.csv", target="y"),
            val_src=src("va.npz", kind="npz", span=VAL_SPAN),
            task=ir.Task.regression,
        ),
        tmp_path,
    ).diagnostic
    assert (d.code, d.span) == ("E506", VAL_SPAN) and "[3]" in d.message and "[1]" in d.message


def test_data_module_is_pure_numpy(tmp_path):
    # a fresh interpreter, run outside the repo so the checkout's `trainc/` folder does not shadow the package
    code = "import sys, trainc.runtime.data; assert 'tinygrad' not in sys.modules and 'sklearn' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path, timeout=60)


def test_target_standardised_on_train_only():
    raw = np.loadtxt(DATA_DIR / "diabetes.csv", delimiter=",", skiprows=1)
    ds = load_data(diabetes(train=0.8, val=0.2, target_normalize="standard"), DATA_DIR, seed=3)
    plain = load_data(diabetes(train=0.8, val=0.2), DATA_DIR, seed=3)
    tn = ds.target_normalizer
    np.testing.assert_allclose(tn.shift, plain.y_train.mean(0), rtol=1e-5)
    np.testing.assert_allclose(tn.scale, plain.y_train.std(0), rtol=1e-5)
    np.testing.assert_allclose(ds.y_val * tn.scale + tn.shift, plain.y_val, rtol=1e-5)
    assert abs(ds.y_train.mean()) < 1e-5 and abs(ds.y_train.std() - 1) < 1e-5
    assert abs(ds.y_val.mean()) > 1e-3  # val uses the training statistics, not its own
    assert plain.target_normalizer is None and raw.shape[0] == len(plain.y_train) + len(plain.y_val)

"""Did-you-mean knows other frameworks' names (compiler/catalog/aliases.py): an alias ranks before edit
distance, and the help says what the name is called here."""

from __future__ import annotations

import pytest
from helpers import DIGITS, ERROR_SPECS, where
from trainc.compiler import catalog as C
from trainc.compiler import lint
from trainc.compiler.catalog.aliases import ALIASES, TABLES
from trainc.compiler.diagnostics import did_you_mean

from trainc import lsp

BASE = DIGITS.read_text()

CASES = [  # in the digits spec, this text replaced by that one; the name suggested (edit distance would say otherwise)
    ("metrics = [accuracy]", "metrics = [acc]", "accuracy"),  # not auc
    ("cross_entropy(logits, target, smoothing = 0.05)", "binary_crossentropy(logits, target)", "bce"),
    ("cross_entropy(logits, target, smoothing = 0.05)", "CrossEntropyLoss(logits, target)", "cross_entropy"),
    ("cross_entropy(logits, target, smoothing = 0.05)", "sparse_categorical_crossentropy(logits, target)",
     "cross_entropy"),
    ("init = he", "init = he_normal", "he"),  # not normal
    ("init = he", "init = glorot_uniform", "glorot"),  # not glorot_normal
    ("init = he", "init = kaiming_normal", "kaiming"),  # not kaiming_uniform
    ("init = he", "init = xavier_uniform", "xavier"),
    ("max   = 30 epochs", "max   = 3000 iters", "steps"),  # not minutes
    ("run { seed = 0 }", "run {\n  seed   = 0\n  device = gpu\n}", "cuda"),  # not cpu
    ("run { seed = 0 }", "run {\n  seed   = 0\n  device = mps\n}", "metal"),
    ("run { seed = 0 }", 'run {\n  seed   = 0\n  device = "cuda:0"\n}', "cuda"),
    ("run { seed = 0 }", "run {\n  seed      = 0\n  precision = fp16\n}", "f16"),
    ("when  = val.accuracy", "when  = val.acuracy", "val.accuracy"),  # edit distance, keeping `val.`
    ("when  = val.accuracy", "when  = val.acc", "val.accuracy"),
    ("optimizer = adamw(lr = 3e-3", "optimizer = AdamW(lr = 3e-3", "adamw"),
    ("adamw(lr = 3e-3", "adamw(learning_rate = 3e-3", "lr"),
    ("schedule  = warmup(50 steps) then cosine(to = 1e-5)", "schedule  = CosineAnnealingLR(to = 1e-5)", "cosine"),
    ("schedule  = warmup(50 steps) then cosine(to = 1e-5)", "schedule  = StepLR(every = 5 epochs)", "step"),
    ("schedule  = warmup(50 steps) then cosine(to = 1e-5)", "schedule  = ReduceLROnPlateau(val.loss)", "plateau"),
    ("dense(10)", "Dense(10)", "dense"),
    ("dense(10)", "Linear(10)", "dense"),
    ("dropout(0.1)", "Dropout(0.1)", "dropout"),
    ("early = plateau(", "early = EarlyStopping(", "plateau"),
    ("normalize = standard", "normalize = StandardScaler", "standard"),
    ("batch     = 64", "batch_size = 64", "batch"),
    ("max   = 30 epochs", "max_epochs = 30 epochs", "max"),
    ('target = "label"', 'label = "label"', "target"),  # csv's argument
    ("restore_best = true", "restore_best_weights = true", "restore_best"),
    ("warmup(50 steps)", "warmup(warmup_steps = 50 steps)", "length"),
    ("dense(width, init = he)", "dense(width, kernel_initializer = he)", "init"),
    ("dense(10)", "dense(out_features = 10)", "units"),
    ("dropout(0.1)", "dropout(rate = 0.1)", "p"),
    ("normalize = standard", "normalize = zscore", "standard"),
]


@pytest.mark.parametrize("old, new, expected", CASES, ids=[c[1].split("\n")[-2 if "\n" in c[1] else 0] for c in CASES])
def test_alias_or_close_name_suggested(old, new, expected):
    assert old in BASE
    src = BASE.replace(old, new, 1)
    helps = [d.help or "" for d in lint(src, "a.train")]
    assert any(h.endswith(f"'{expected}'") or h == f"did you mean '{expected}'?" for h in helps), helps


def test_the_help_says_whose_name_it_is():
    keras = "`binary_crossentropy` is Keras' name; here it is 'bce'"
    assert did_you_mean("binary_crossentropy", C.LOSSES.names()) == keras
    assert did_you_mean("StepLR", C.SCHEDULES.names()) == "`StepLR` is PyTorch's name; here it is 'step'"
    assert did_you_mean("adamm", C.OPTIMIZERS.names()) == "did you mean 'adam'?"  # no alias: edit distance
    assert did_you_mean("acc", ["auc"]) == "did you mean 'auc'?"  # an alias whose name is not a choice is ignored


TARGETS = {  # an alias's kind -> the names it may map to
    **{r.kind: set(r.names()) for r in (C.LAYERS, C.INITS, C.LOSSES, C.OPTIMIZERS, C.SCHEDULES, C.METRICS,
                                        C.STOP_RULES)},
    "unit": set(C.UNITS), "device": set(C.DEVICES), "precision": set(C.PRECISIONS), "option": {
        w for v in C.KEY_VALUES.values() if isinstance(v, C.Choice) for w in v.options},
    "key": {k for keys in C.SECTIONS.values() for k in keys} | {"init"} | {
        p.name for r in lsp.REGISTRIES for e in r.entries.values() for p in e.params},
}


@pytest.mark.parametrize("whose, kind, names", TABLES, ids=[f"{w}-{k}" for w, k, _ in TABLES])
def test_every_alias_names_what_exists(whose, kind, names):
    missing = {a: t for a, t in names.items() if t not in TARGETS[kind]}
    assert not missing, f"{whose} {kind} aliases of names trainc does not have: {missing}"
    taken = {a for a in names if a in TARGETS[kind]}  # `Adam` may name `adam`; `adam` need not
    assert not taken, f"already trainc's names: {taken}"


def test_an_alias_has_one_meaning_per_kind():
    clash = {a: ts for a, ts in ALIASES.items() if any(len({t for _, k2, t in ts if k2 == k}) > 1 for _, k, _ in ts)}
    assert not clash, clash


def test_quick_fix_applies_the_alias():
    src = BASE.replace("init = he", "init = he_normal", 1)
    [action] = [a for a in lsp.code_actions(src, "a.train", "file:///a.train", lsp.types.Range(
        start=lsp.types.Position(line=where(src, "he_normal")[0] - 1, character=0),
        end=lsp.types.Position(line=where(src, "he_normal")[0] - 1, character=80)))]
    [edit] = action.edit.changes["file:///a.train"]
    assert edit.new_text == "he" and action.title == "Replace 'he_normal' with 'he'"


GOLDEN = sorted(ERROR_SPECS.glob("name_alias_*.train"))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden_aliases_say_what_it_is_called_here(path):  # their `# expect:` lines are checked by test_errors
    (d,) = lint(path.read_text(), str(path))
    assert d.help and " name; here it is '" in d.help, d.help


def test_there_are_golden_aliases():
    assert len(GOLDEN) >= 6

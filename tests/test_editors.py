"""The editor support in editors/: the VS Code package's JSON files, its TextMate grammar and the
language configuration.

A small Python tokenizer applies the grammar's rules the way a TextMate engine does (first match
on a line wins, earlier rules break ties; begin/end rules nest; captures may retokenize), so the
grammar is checked on every shipped spec against the real lexer of grammar/train.lark. Where node
and the extension's node_modules are installed (`npm install` in editors/vscode), the same
checks run through vscode-textmate, the engine VS Code uses, and the two tokenizers must agree.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import REPO
from trainc.compiler import catalog as C
from trainc.grammar import parser

VSCODE = REPO / "editors" / "vscode"
GRAMMAR = json.loads((VSCODE / "syntaxes" / "trainc.tmLanguage.json").read_text())
PACKAGE = json.loads((VSCODE / "package.json").read_text())
LANGUAGE = json.loads((VSCODE / "language-configuration.json").read_text())
SPECS = sorted((REPO / "specs").glob("*.train")) + sorted((REPO / "examples").glob("*.train"))


# ---------------------------------------------------------------------------------------------
# A TextMate tokenizer: scopes for every character of every line
# ---------------------------------------------------------------------------------------------


def rules(patterns: list[dict]) -> list[dict]:
    """`patterns` with every `include` (and every rule that only groups patterns) expanded, in order."""
    out = []
    for p in patterns:
        if "include" in p:
            out += rules([GRAMMAR["repository"][p["include"].removeprefix("#")]])
        elif "match" in p or "begin" in p:
            out.append(p)
        else:
            out += rules(p["patterns"])
    return out


def add(scopes: list[list[str]], start: int, end: int, name: str | None) -> None:
    for i in range(start, end):
        scopes[i] = scopes[i] + (name.split() if name else [])


def captures(scopes: list[list[str]], line: str, m: re.Match, caps: dict) -> None:
    for group in sorted(caps, key=int):
        start, end = m.span(int(group))
        if start < 0 or start == end:
            continue
        add(scopes, start, end, caps[group].get("name"))
        if "patterns" in caps[group]:  # retokenize the captured text with these rules
            inner = tokenize_line(line[:end], [], rules(caps[group]["patterns"]), start)[0]
            for i in range(start, end):
                scopes[i] = scopes[i] + inner[i]


def tokenize_line(line: str, stack: list, top: list[dict], pos: int = 0) -> tuple[list[list[str]], list]:
    """Scopes below the root for each character of `line` from `pos`, and the begin/end stack after it.
    `stack` holds (rule, scopes) of the begin/end rules open at the start of the line."""
    scopes: list[list[str]] = [[] for _ in line]
    stack = list(stack)
    while pos <= len(line):
        rule, base = stack[-1] if stack else (None, [])
        candidates = ([("end", rule, rule["end"])] if rule else []) + [
            ("begin" if "begin" in r else "match", r, r.get("begin", r.get("match"))) for r in
            rules(rule["patterns"] if rule else top)]
        best = None
        for kind, r, rx in candidates:
            m = re.compile(rx).search(line, pos)
            if m and (best is None or m.start() < best[2].start()):
                best = (kind, r, m)
        if best is None:
            for i in range(pos, len(line)):
                scopes[i] = list(base)
            break
        kind, r, m = best
        for i in range(pos, m.start()):
            scopes[i] = list(base)
        if kind == "end":
            for i in range(m.start(), m.end()):
                scopes[i] = list(base)
            captures(scopes, line, m, r.get("endCaptures", {}))
            stack.pop()
        else:
            own = base + r.get("name", "").split()
            for i in range(m.start(), m.end()):
                scopes[i] = list(own)
            captures(scopes, line, m, r.get("captures" if kind == "match" else "beginCaptures", {}))
            if kind == "begin":
                stack.append((r, own))
        if m.end() == m.start() and kind != "end":  # an empty match: move on, as the engines do
            if pos < len(line):
                scopes[pos] = list(base)
            pos += 1
        else:
            pos = m.end()
        if pos == len(line) and not stack:
            break
    return scopes, stack


def tokenize(text: str) -> list[list[list[str]]]:
    """The scopes of every character of every line, `source.trainc` first, as vscode-textmate gives them."""
    stack: list = []
    out = []
    for line in text.split("\n"):
        scopes, stack = tokenize_line(line, stack, GRAMMAR["patterns"])
        out.append([[GRAMMAR["scopeName"]] + s for s in scopes])
    return out


def scopes_of(line: str, text: str) -> set[str]:
    """The scopes every character of the first `text` in the one-line spec `line` has (a word: as a whole word)."""
    start = re.search(rf"(?<![A-Za-z_]){re.escape(text)}(?!\w)" if text[0].isalpha() else re.escape(text), line).start()
    chars = tokenize(line)[0][start:start + len(text)]
    return set.intersection(*(set(c) for c in chars))


# ---------------------------------------------------------------------------------------------
# The grammar
# ---------------------------------------------------------------------------------------------


def all_regexes(node) -> list[str]:
    if isinstance(node, dict):
        own = [v for k, v in node.items() if k in ("match", "begin", "end")]
        return own + [rx for v in node.values() for rx in all_regexes(v)]
    if isinstance(node, list):
        return [rx for v in node for rx in all_regexes(v)]
    return []


@pytest.mark.parametrize("rx", all_regexes(GRAMMAR))
def test_regex_compiles_in_python(rx):
    re.compile(rx)  # the grammar keeps to the syntax Oniguruma and Python share


def test_names_are_generated_from_the_catalog():
    spec = importlib.util.spec_from_file_location("gen_names", VSCODE / "scripts" / "gen_names.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = (VSCODE / "syntaxes" / "trainc.tmLanguage.json").read_text()
    assert gen.render(json.loads(text)) == text, "run editors/vscode/scripts/gen_names.py"


REGISTRIES = {"layer": C.LAYERS, "loss": C.LOSSES, "optimizer": C.OPTIMIZERS, "schedule": C.SCHEDULES,
              "metric": C.METRICS, "init": C.INITS, "source": C.SOURCES, "stop-rule": C.STOP_RULES,
              "regularizer": C.REGULARIZERS, "divergence": C.DIVERGENCE}


@pytest.mark.parametrize("kind", REGISTRIES)
def test_grammar_lists_every_registry_name(kind):
    patterns = GRAMMAR["repository"]["registry"]["patterns"]
    [rule] = [r for r in patterns if r["name"] == f"support.function.{kind}.trainc"]
    missing = [n for n in REGISTRIES[kind].names() if not re.fullmatch(rule["match"], n)]
    assert not missing, f"not in the grammar: {missing}; run editors/vscode/scripts/gen_names.py"
    for name in REGISTRIES[kind].names():  # called, each gets both scopes
        scopes = scopes_of(f"x = {name}(1)", name)
        assert "entity.name.function.trainc" in scopes and any(s.startswith("support.function.") for s in scopes)


def test_grammar_lists_every_section_unit_and_dtype():
    for section in C.SECTIONS:
        assert "entity.name.section.trainc" in scopes_of(f"{section} {{ }}", section)
        assert "entity.name.section.trainc" in scopes_of(f"{section} = 1", section)
    for unit in C.UNITS:
        assert "keyword.other.unit.trainc" in scopes_of(f"x = 3 {unit}", unit)
    for dtype in C.DTYPES:
        assert "storage.type.dtype.trainc" in scopes_of(f"input x: {dtype}[4]", dtype)
    for precision in C.PRECISIONS:  # bf16 was not highlighted
        assert "storage.type.dtype.trainc" in scopes_of(f"  precision = {precision}", precision)


WORD_SCOPES = {"support.constant.option.trainc", "constant.language.boolean.trainc", "storage.type.dtype.trainc"}


@pytest.mark.parametrize("where, typ", [(k, v) for k, v in C.KEY_VALUES.items() if not isinstance(v, C.Registry)],
                         ids=lambda x: ".".join(x) if isinstance(x, tuple) else "")
def test_grammar_highlights_every_word_a_key_takes(where, typ):
    for word in typ.options if isinstance(typ, C.Choice) else ("true", "false"):
        assert WORD_SCOPES & scopes_of(f"  {where[1]} = {word}", word), word


CASES = [  # one line of a spec, a piece of it, a scope all of that piece has (or, with "!", lacks)
    ("data {", "data", "entity.name.section.trainc"),
    ("  batch = 64", "batch", "variable.other.property.trainc"),
    ("  batch = 64", "=", "keyword.operator.assignment.trainc"),
    ("  batch = 64", "64", "constant.numeric.trainc"),
    ("  stop_when = 1", "stop_when", "variable.other.property.trainc"),
    ("  stop_when = 1", "stop_when", "!entity.name.section.trainc"),
    ("  x = dense(10) -> stop", "stop", "!entity.name.section.trainc"),
    ("x = 3e-3", "3e-3", "constant.numeric.trainc"),
    ("x = .5", ".5", "constant.numeric.trainc"),
    ("max = 30 epochs", "epochs", "keyword.other.unit.trainc"),
    ("max = 30epochs", "epochs", "keyword.other.unit.trainc"),
    ("budget = 10 minutes", "minutes", "keyword.other.unit.trainc"),
    ("x = warmup(10%)", "%", "keyword.other.unit.trainc"),
    ("x = 3 seeds", "seeds", "!keyword.other.unit.trainc"),
    ("x = steps", "steps", "!keyword.other.unit.trainc"),
    ("h = conv2d(8, 3)", "2", "!constant.numeric.trainc"),
    ("h = conv2d(8, 3)", "conv2d", "support.function.layer.trainc"),
    ("  input x: i32[16]", "input", "keyword.other.input.trainc"),
    ("  input x: i32[16]", "x", "variable.other.input.trainc"),
    ("  input x: i32[16]", "i32", "storage.type.dtype.trainc"),
    ("  input x: i32[16]", "16", "constant.numeric.trainc"),
    ("  block mlp(width, p = 0.1) { dense(width) }", "block", "keyword.other.block.trainc"),
    ("  block mlp(width, p = 0.1) { dense(width) }", "mlp", "entity.name.function.block.trainc"),
    ("  block mlp(width, p = 0.1) { dense(width) }", "width", "variable.parameter.trainc"),
    ("  block mlp(width, p = 0.1) { dense(width) }", "p", "variable.parameter.trainc"),
    ("  block mlp(width, p = 0.1) { dense(width) }", "0.1", "constant.numeric.trainc"),
    ("  logits = x -> mlp(128)", "mlp", "entity.name.function.trainc"),
    ("  logits = x -> mlp(128)", "mlp", "!support.function.layer.trainc"),
    ("  logits = x -> mlp(128)", "->", "keyword.operator.pipeline.trainc"),
    ("  h = x -> repeat 3 { relu }", "repeat", "keyword.control.repeat.trainc"),
    ("  h = x -> repeat 3 { relu }", "relu", "support.function.layer.trainc"),
    ("schedule = warmup(50 steps) then cosine()", "then", "keyword.control.then.trainc"),
    ("schedule = warmup(50 steps) then cosine()", "schedule", "entity.name.section.trainc"),
    ("  when = val.accuracy >= 0.99", "val", "variable.language.split.trainc"),
    ("  when = val.accuracy >= 0.99", "accuracy", "support.function.metric.trainc"),
    ("  when = val.accuracy >= 0.99", ">=", "keyword.operator.comparison.trainc"),
    ("  when = val.accuracy >= 0.99", "when", "variable.other.property.trainc"),
    ("  x = a == b", "a", "!variable.other.property.trainc"),
    ("  x = a == b", "==", "keyword.operator.comparison.trainc"),
    ("  shuffle = true", "true", "constant.language.boolean.trainc"),
    ("  normalize = standard", "standard", "support.constant.option.trainc"),
    ("  device = cuda", "cuda", "support.constant.option.trainc"),
    ("  x = dense(10, init = he)", "he", "support.function.init.trainc"),
    ("loss = cross_entropy(logits, target)", "target", "variable.language.target.trainc"),
    ("x = 1  # a comment", "# a comment", "comment.line.number-sign.trainc"),
    ("x = 1  # a comment", "1", "!comment.line.number-sign.trainc"),
    ('x = csv("a # b")', "# b", "string.quoted.double.trainc"),
    ('x = csv("a # b")', "# b", "!comment.line.number-sign.trainc"),
    ('x = csv("a \\" b") # c', "# c", "comment.line.number-sign.trainc"),
    ('x = csv("a \\" b") # c', '\\"', "constant.character.escape.trainc"),
    ('x = csv("C:\\data")', "\\d", "invalid.illegal.unknown-escape.trainc"),
    ('x = csv("open', "open", "string.quoted.double.trainc"),
]


@pytest.mark.parametrize("line, piece, scope", CASES)
def test_scope(line, piece, scope):
    if scope.startswith("!"):
        assert scope[1:] not in scopes_of(line, piece)
    else:
        assert scope in scopes_of(line, piece)


def test_an_unterminated_string_ends_at_the_line():
    lines = tokenize('x = "open\ny = 1')
    assert "string.quoted.double.trainc" not in lines[1][0]
    assert "variable.other.property.trainc" in lines[1][0]


def expected_scopes(text: str) -> dict[tuple[int, int], str]:
    """(line, column) -> the scope the real lexer's tokens call for, 0-based, for each character whose
    token is unambiguous: comments, strings, numbers and their units, keywords and operators."""
    tokens = [t for t in parser().lex(text, dont_ignore=True) if t.type != "_NL" and not t.type.startswith("__IGNORE")]
    out = {}
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1] if i else None
        unit = prev is not None and prev.type == "NUMBER" and prev.line == tok.line
        scope = {"COMMENT": "comment.line.number-sign.trainc", "STRING": "string.quoted.double.trainc",
                 "NUMBER": "constant.numeric.trainc", "CMP": "keyword.operator.comparison.trainc"}.get(tok.type)
        scope = scope or {"->": "keyword.operator.pipeline.trainc", "then": "keyword.control.then.trainc",
                          "repeat": "keyword.control.repeat.trainc", "true": "constant.language.boolean.trainc",
                          "false": "constant.language.boolean.trainc", "input": "keyword.other.input.trainc",
                          "block": "keyword.other.block.trainc"}.get(str(tok))
        if unit and (str(tok) == "%" or (tok.type == "NAME" and str(tok) in C.UNITS)):
            scope = "keyword.other.unit.trainc"
        if scope:
            for col in range(tok.column - 1, tok.end_column - 1):
                out[(tok.line - 1, col)] = scope
    return out


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_shipped_specs_scope_as_the_lexer_reads_them(path):
    text = path.read_text()
    expected = expected_scopes(text)
    got = tokenize(text)
    for (line, col), scope in expected.items():
        assert scope in got[line][col], f"{path.name}:{line + 1}:{col + 1}: expected {scope}, got {got[line][col]}"
    for exact in ("comment.line.number-sign.trainc", "keyword.other.unit.trainc", "constant.numeric.trainc"):
        # and the other way round: nothing else is a comment, a unit or a number (every unit follows a number)
        scoped = {(i, j) for i, line in enumerate(got) for j, s in enumerate(line) if exact in s}
        assert scoped == {pos for pos, s in expected.items() if s == exact}, exact


# ---------------------------------------------------------------------------------------------
# The same through vscode-textmate, where it is installed
# ---------------------------------------------------------------------------------------------

NODE = shutil.which("node")
NODE_MODULES = (VSCODE / "node_modules" / "vscode-textmate").is_dir() and (
    VSCODE / "node_modules" / "vscode-oniguruma").is_dir()
needs_node = pytest.mark.skipif(not (NODE and NODE_MODULES), reason="needs node and `npm install` in editors/vscode")


@needs_node
def test_node_tests():
    """test/scopes.test.js (the grammar in vscode-textmate) and test/extension.test.js (the client, stubbed)."""
    run = subprocess.run([NODE, "--test", "test/scopes.test.js", "test/extension.test.js"], cwd=VSCODE,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


@needs_node
def test_python_tokenizer_agrees_with_vscode_textmate():
    run = subprocess.run([NODE, "test/tokenize.js", *map(str, SPECS)], cwd=VSCODE, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    for path, lines in json.loads(run.stdout).items():
        mine = tokenize(open(path).read())
        for i, (theirs, ours) in enumerate(zip(lines, mine, strict=True)):
            assert theirs == ours, f"{path}:{i + 1}"


# ---------------------------------------------------------------------------------------------
# package.json and language-configuration.json
# ---------------------------------------------------------------------------------------------


def test_package_contributes_what_exists():
    contributes = PACKAGE["contributes"]
    [language] = contributes["languages"]
    assert language["id"] == "trainc" and language["extensions"] == [".train"]
    assert (VSCODE / language["configuration"]).is_file()
    [grammar] = contributes["grammars"]
    assert grammar["language"] == "trainc" and grammar["scopeName"] == GRAMMAR["scopeName"] == "source.trainc"
    assert json.loads((VSCODE / grammar["path"]).read_text())["scopeName"] == "source.trainc"
    assert (VSCODE / PACKAGE["main"]).is_file()
    assert "onLanguage:trainc" in PACKAGE["activationEvents"]
    assert contributes["configuration"]["properties"]["trainc.server.path"]["default"] == "trainc"
    assert [c["command"] for c in contributes["commands"]] == ["trainc.restartServer"]
    assert "vscode-languageclient" in PACKAGE["dependencies"]
    extension = (VSCODE / PACKAGE["main"]).read_text()
    assert "trainc.restartServer" in extension and "'lsp'" in extension and "server.path" in extension


CONCISE = [  # a line of `trainc lint --format concise`, and what the problem matcher must read from it
    ("specs/a.train:12:13: error: unknown optimizer 'adamm' [E201] (help: did you mean 'adam'?)",
     ("specs/a.train", "12", "13", "error", "unknown optimizer 'adamm' [E201] (help: did you mean 'adam'?)", "E201")),
    ("C:\\specs\\b c.train:3:1: warning: early stopping: patience 3 [x] <= 5 [W301]",
     ("C:\\specs\\b c.train", "3", "1", "warning", "early stopping: patience 3 [x] <= 5 [W301]", "W301")),
    ("a.train:1:1: error: no code", ("a.train", "1", "1", "error", "no code", None)),
    ("2 errors", None),
    ("   |", None),
]
FIELDS = ("file", "line", "column", "severity", "message", "code")


@pytest.mark.parametrize("line, fields", CONCISE)
def test_problem_matcher(line, fields):
    [matcher] = PACKAGE["contributes"]["problemMatchers"]
    pattern = matcher["pattern"]
    m = re.match(pattern["regexp"], line)
    assert (m and tuple(m.group(pattern[k]) for k in FIELDS)) == fields


def test_problem_matcher_reads_the_real_lint_output():
    errors = sorted((REPO / "specs" / "errors").glob("*.train"))
    lint = [sys.executable, "-m", "trainc", "lint", "--format", "concise", "--no-data"]
    run = subprocess.run(lint + [str(p) for p in errors], capture_output=True, text=True, timeout=300)
    if run.returncode == 2:
        pytest.skip(f"no `trainc lint --format concise`: {run.stderr.strip()[-200:]}")
    pattern = PACKAGE["contributes"]["problemMatchers"][0]["pattern"]
    lines = run.stdout.splitlines()
    assert run.returncode == 1 and lines, run.stderr
    for line in lines:  # every line is a finding the matcher reads whole, with its code
        m = re.match(pattern["regexp"], line)
        assert m and m.group(pattern["code"]) and (REPO / m.group(pattern["file"])).is_file(), line
    assert any(re.search(r"name_unknown_optimizer\.train:12:13: error: .* \[E201\]", line) for line in lines)


def test_language_configuration():
    assert LANGUAGE["comments"] == {"lineComment": "#"}
    assert LANGUAGE["brackets"] == [["{", "}"], ["[", "]"], ["(", ")"]]
    pairs = {(p["open"], p["close"]) for p in LANGUAGE["autoClosingPairs"]}
    assert pairs == {("{", "}"), ("[", "]"), ("(", ")"), ('"', '"')}
    assert ['"', '"'] in LANGUAGE["surroundingPairs"]
    assert re.fullmatch(LANGUAGE["wordPattern"], "cross_entropy") and re.fullmatch(LANGUAGE["wordPattern"], "3e-3")
    assert re.match(LANGUAGE["folding"]["markers"]["start"], "  # region data")
    assert re.match(LANGUAGE["folding"]["markers"]["end"], "# endregion")


INDENT = [  # a line, whether the next one is indented, whether this one is dedented
    ("data {", True, False),
    ("model {   # the network", True, False),
    ("optimizer = sgd(", True, False),
    ("optimizer = sgd(lr = 0.05,", False, False),
    ("metrics = [", True, False),
    ("run { seed = 0 }", False, False),
    ('x = csv("{")', False, False),
    ("x = 1  # {", False, False),
    ("}", False, True),
    ("  }", False, True),
    ("])", False, True),
    ("  batch = 64", False, False),
]


@pytest.mark.parametrize("line, increase, decrease", INDENT)
def test_indentation_rules(line, increase, decrease):
    rules_ = LANGUAGE["indentationRules"]
    assert bool(re.search(rules_["increaseIndentPattern"], line)) == increase
    assert bool(re.search(rules_["decreaseIndentPattern"], line)) == decrease


# ---------------------------------------------------------------------------------------------
# The set-up snippets of editors/README.md, run where the editor is installed
# ---------------------------------------------------------------------------------------------

README = (REPO / "editors" / "README.md").read_text()
CONCISE_OUTPUT = "specs/a.train:12:13: error: unknown optimizer [E201]\nspecs/b.train:3:1: warning: early [W301]\n"


def snippet(lang: str) -> str:
    [block] = re.findall(rf"^ *```{lang}\n(.*?)^ *```$", README, re.S | re.M)
    return block


def test_readme_helix_and_vscode_snippets():
    import tomllib

    helix = tomllib.loads(snippet("toml"))
    [language] = helix["language"]
    assert language["file-types"] == ["train"] and language["language-servers"] == ["trainc"]
    assert helix["language-server"]["trainc"] == {"command": "trainc", "args": ["lsp"]}
    [task] = json.loads(snippet("json"))["tasks"]
    assert task["problemMatcher"] == "$" + PACKAGE["contributes"]["problemMatchers"][0]["name"]
    assert "--format concise" in task["command"]
    lua = snippet("lua")
    assert "cmd = { 'trainc', 'lsp' }" in lua and "vim.lsp.enable('trainc')" in lua and "train = 'trainc'" in lua


@pytest.mark.skipif(not shutil.which("vim"), reason="needs vim")
def test_readme_errorformat_in_vim(tmp_path):
    [efm] = re.findall(r"vim\.bo\.errorformat = '(.*)'", snippet("lua"))
    (tmp_path / "errors.txt").write_text(CONCISE_OUTPUT + "trainc: 2 findings\n")
    show = 'bufname(v:val.bufnr) . "|" . v:val.lnum . "|" . v:val.col . "|" . v:val.type . "|" . v:val.text'
    subprocess.run(["vim", "-u", "NONE", "-N", "-es", "-c", f"let &errorformat = '{efm}'", "-c",
                    f"cfile {tmp_path / 'errors.txt'}", "-c",
                    f"call writefile(map(getqflist(), '{show}'), '{tmp_path / 'qf.txt'}')", "-c", "qa!"],
                   timeout=60, stdin=subprocess.DEVNULL, capture_output=True)
    assert (tmp_path / "qf.txt").read_text().splitlines() == [
        "specs/a.train|12|13|e|unknown optimizer [E201]", "specs/b.train|3|1|w|early [W301]"]


EMACS_CHECK = """
(remove-hook 'trainc-mode-hook #'eglot-ensure)
(find-file "spec.train")
(font-lock-ensure)
(princ (format "%s %s %s %s\\n" major-mode (nth 4 (syntax-ppss 3)) (nth 4 (syntax-ppss 20))
               (get-text-property (- (search-forward "block") 1) 'face)))
(require 'compile)
(with-temp-buffer
  (insert (getenv "CONCISE"))
  (compilation-mode)
  (font-lock-ensure)
  (goto-char (point-min))
  (while (not (eobp))
    (let ((msg (get-text-property (point) 'compilation-message)))
      (princ (format "%s %s\\n" (compilation--loc->line (compilation--message->loc msg))
                     (compilation--message->type msg))))
    (forward-line 1)))
"""


@pytest.mark.skipif(not shutil.which("emacs"), reason="needs emacs")
def test_readme_trainc_mode_in_emacs(tmp_path):
    (tmp_path / "mode.el").write_text(snippet("elisp"))
    (tmp_path / "check.el").write_text(EMACS_CHECK)
    (tmp_path / "spec.train").write_text('# a "comment"\nx = "# no comment"\nmodel { block b() { relu } }\n')
    run = subprocess.run(["emacs", "--batch", "-Q", "-l", "mode.el", "-l", "check.el"], cwd=tmp_path, timeout=120,
                         capture_output=True, text=True, env={**os.environ, "CONCISE": CONCISE_OUTPUT})
    # trainc-mode; in a comment on line 1, not in the string on line 2; `block` a keyword; error 2, warning 1
    assert run.stdout.splitlines() == ["trainc-mode t nil font-lock-keyword-face", "12 2", "3 1"], run.stderr


# ---------------------------------------------------------------------------------------------
# Packaging: the README inside the .vsix, and `vsce package` where vsce is installed (never downloaded)
# ---------------------------------------------------------------------------------------------


def test_packaged_readme_links_nothing_relative():
    """vsce rewrites relative links against the repository's URL; without one (package.json has none) it
    refuses them: "The link '../../README.md' will be broken"."""
    links = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)", (VSCODE / "README.md").read_text())
    links += re.findall(r'(?:src|href)="([^"]+)"', (VSCODE / "README.md").read_text())
    relative = [u for u in links if not re.match(r"(?:[a-z][a-z0-9+.-]*:|#)", u)]
    assert not relative, relative


def _vsce() -> list[str] | None:
    """The vsce command when it is installed here (in node_modules or on PATH), never fetched by npx."""
    local = VSCODE / "node_modules" / ".bin" / "vsce"
    found = str(local) if local.is_file() else shutil.which("vsce")
    return [found] if found else None


@pytest.mark.skipif(not (NODE and _vsce() and (VSCODE / "node_modules" / "vscode-languageclient").is_dir()),
                    reason="needs node, vsce and `npm install` in editors/vscode")
def test_the_documented_package_command_works(tmp_path):
    command = re.search(r"npx --yes @vscode/vsce (package[^#\n]*)", README).group(1).split()
    out = tmp_path / "trainc.vsix"
    run = subprocess.run([*_vsce(), *command, "--out", str(out)], cwd=VSCODE, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0 and out.is_file(), run.stdout + run.stderr


def _vsce() -> list[str] | None:
    """The vsce to package with, where it is installed already (no download in a test): npx's cache."""
    npx = shutil.which("npx")
    if not (npx and NODE and (VSCODE / "node_modules" / "vscode-languageclient").is_dir()):
        return None
    probe = subprocess.run([npx, "--no-install", "@vscode/vsce", "--version"], capture_output=True, text=True,
                           timeout=60)
    return [npx, "--no-install", "@vscode/vsce"] if probe.returncode == 0 else None


def test_the_documented_packaging_command_writes_a_vsix(tmp_path):
    """editors/README.md's command (`vsce package --allow-missing-repository --skip-license`) on a copy of the
    extension: vsce refuses a README link that leaves the extension's folder, which it once held."""
    vsce = _vsce()
    if vsce is None:
        pytest.skip("needs node, `npm install` in editors/vscode and @vscode/vsce in npx's cache")
    doc = (VSCODE.parent / "README.md").read_text()
    assert "npx --yes @vscode/vsce package --allow-missing-repository --skip-license" in doc
    copy = tmp_path / "vscode"
    shutil.copytree(VSCODE, copy, symlinks=True, ignore=shutil.ignore_patterns("*.vsix"))
    run = subprocess.run([*vsce, "package", "--allow-missing-repository", "--skip-license"], cwd=copy,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert list(copy.glob("trainc-*.vsix"))

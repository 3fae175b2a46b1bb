"""`trainc lsp`: end to end through a real client over stdio (pytest-lsp), plus the pure helpers.

Each end-to-end test opens its own document URI in one server per module; positions are
0-based and, unless a test says otherwise, in UTF-16 code units (the client declares no
position encodings, so the server must use UTF-16).
"""

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from trainc import lsp
from trainc.compiler import lint

e2e = pytest.mark.asyncio(loop_scope="module")

SPEC = """\
data {
  source = csv("digits.csv", target = "label")
  split  = { train = 0.8, val = 0.2 }
}

model {
  input x: f32[64]
  block mlp(width) { dense(width) -> relu }
  h      = x -> mlp(32)
  logits = h -> dense(10)
}

loss      = cross_entropy(logits, target)
optimizer = adam(lr = 1e-2)
stop { max = 3 epochs }
metrics = [accuracy]
"""

# 🙂 is one code point, two UTF-16 code units, four UTF-8 bytes; é is 1 / 1 / 2; 中 is 1 / 1 / 3.
SMILEY_SOURCE = '  source = csv("dé中🙂🙂.csv", tagret = "label")'


def _client() -> LanguageClient:
    """The pytest-lsp client, also keeping every publishDiagnostics it receives (with its version)."""
    client = LanguageClient(converter_factory=default_converter)
    client.published = []

    def publish(c: LanguageClient, params: types.PublishDiagnosticsParams):
        c.published.append(params)
        c.diagnostics[params.uri] = params.diagnostics

    register_lsp_features(client, {**DEFAULT_CLIENT_FEATURES, types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: publish})
    return client


SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "trainc", "lsp"], client_factory=_client)


@pytest_lsp.fixture(scope="module", config=SERVER)
async def client(lsp_client: LanguageClient):
    caps = client_capabilities("visual-studio-code@v1.65.2")  # lists no position encodings: UTF-16
    result = await lsp_client.initialize_session(types.InitializeParams(capabilities=caps))
    assert result.capabilities.position_encoding == types.PositionEncodingKind.Utf16
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(scope="module", config=SERVER)
async def client_utf8(lsp_client: LanguageClient):
    caps = client_capabilities("neovim@v0.11.0")  # prefers utf-8, then utf-16, utf-32
    result = await lsp_client.initialize_session(types.InitializeParams(capabilities=caps))
    assert result.capabilities.position_encoding == types.PositionEncodingKind.Utf8
    yield
    await lsp_client.shutdown_session()


def _open(client: LanguageClient, name: str, text: str) -> str:
    uri = f"file:///tmp/trainc-lsp-test/{name}.train"
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="trainc", version=1, text=text)))
    return uri


async def _published(client: LanguageClient, uri: str, version: int) -> types.PublishDiagnosticsParams:
    for _ in range(200):
        found = [p for p in client.published if p.uri == uri and p.version == version]
        if found:
            return found[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no diagnostics published for {uri} version {version}")


def _pos(line: int, character: int) -> types.Position:
    return types.Position(line=line, character=character)


def _range(line: int, start: int, end: int) -> types.Range:
    return types.Range(start=_pos(line, start), end=_pos(line, end))


def _doc(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)


# ---- diagnostics -------------------------------------------------------------------------------


@e2e
async def test_diagnostics_on_open(client: LanguageClient):
    uri = _open(client, "open", SPEC.replace("adam(", "adamm("))
    (d,) = (await _published(client, uri, 1)).diagnostics
    assert d.range == _range(13, 12, 17)  # `adamm` on `optimizer = adamm(lr = 1e-2)`
    assert (d.code, d.source, d.severity) == ("E201", "trainc", types.DiagnosticSeverity.Error)
    assert d.message == "unknown optimizer 'adamm'\nhelp: did you mean 'adam'?"


@e2e
async def test_clean_file_publishes_nothing(client: LanguageClient):
    uri = _open(client, "clean", SPEC)
    assert list((await _published(client, uri, 1)).diagnostics) == []


@e2e
async def test_diagnostics_after_changes_are_debounced(client: LanguageClient):
    uri = _open(client, "change", SPEC)
    assert list((await _published(client, uri, 1)).diagnostics) == []
    edits = [(2, _range(7, 37, 41), "rellu"),  # `relu` in the block -> `rellu`
             (3, _range(13, 12, 16), "sgdd")]  # `adam` -> `sgdd`, right after
    for version, rng, new in edits:
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(range=rng, text=new)]))
    got = await _published(client, uri, 3)
    assert [p.version for p in client.published if p.uri == uri] == [1, 3]  # version 2 was never linted
    assert [(d.code, d.range) for d in got.diagnostics] == [("E201", _range(7, 37, 42)),
                                                           ("E201", _range(13, 12, 16))]
    client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=_doc(uri)))
    await asyncio.sleep(0)
    for _ in range(100):  # saving lints again at once
        if len([p for p in client.published if p.uri == uri]) == 3:
            break
        await asyncio.sleep(0.05)
    assert [p.version for p in client.published if p.uri == uri] == [1, 3, 3]


@e2e
async def test_non_ascii_in_a_string_before_the_error(client: LanguageClient):
    text = SPEC.replace(SPEC.splitlines()[1], SMILEY_SOURCE)
    uri = _open(client, "utf16-string", text)
    diags = (await _published(client, uri, 1)).diagnostics
    # `  source = csv("` is 16 units, `dé中🙂🙂.csv` 11 UTF-16 units (9 code points), `", ` 3:
    # `tagret = "label"` starts at 30 and is 16 long; the call `csv(...)` runs from 11 to 47.
    assert [(d.code, d.range) for d in diags] == [("E301", _range(1, 11, 47)), ("E202", _range(1, 30, 46))]
    uri = _open(client, "utf16-hover", text.replace("tagret", "target"))
    # the last `t` of `target`, at unit 35 (code point 33); read as code point 35 it would be the `=`
    hover = await client.text_document_hover_async(types.HoverParams(text_document=_doc(uri), position=_pos(1, 35)))
    assert hover.range == _range(1, 30, 36)
    assert "target: a string or a list of strings (required)" in hover.contents.value


@e2e
async def test_non_ascii_in_a_comment_before_the_error(client: LanguageClient):
    uri = _open(client, "utf16-comment", "model {  # é 中 🙂")
    diags = (await _published(client, uri, 1)).diagnostics
    (eof,) = [d for d in diags if d.code == "E102"]
    # the end of the file, after 16 code points = 17 UTF-16 units (🙂 counts 2)
    assert eof.range == _range(0, 17, 17)


@e2e
async def test_position_encoding_negotiated_as_utf8(client_utf8: LanguageClient):
    text = SPEC.replace(SPEC.splitlines()[1], SMILEY_SOURCE)
    uri = _open(client_utf8, "utf8", text)
    diags = (await _published(client_utf8, uri, 1)).diagnostics
    # in UTF-8 bytes: 16 + (1 + 2 + 3 + 4 + 4 + 4) + 3 = 37; the call ends 9 bytes later than in code points
    assert [(d.code, d.range) for d in diags] == [("E301", _range(1, 11, 54)), ("E202", _range(1, 37, 53))]
    uri = _open(client_utf8, "utf8-hover", text.replace("tagret", "target"))
    # byte 42 is the last `t` of `target`; read as a code point it would be inside "label"
    hover = await client_utf8.text_document_hover_async(types.HoverParams(text_document=_doc(uri),
                                                                          position=_pos(1, 42)))
    assert hover.range == _range(1, 37, 43)
    assert "target: a string or a list of strings (required)" in hover.contents.value


# ---- completion, hover, definition, symbols ----------------------------------------------------


async def _labels(client: LanguageClient, uri: str, line: int, character: int) -> dict[str, types.CompletionItem]:
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=_doc(uri), position=_pos(line, character)))
    return {item.label: item for item in result.items}


@e2e
async def test_completion(client: LanguageClient):
    text = SPEC.replace("logits = h -> dense(10)", "logits = h -> \n  out = h -> dense(") + "\n"
    uri = _open(client, "completion", text)
    top = await _labels(client, uri, 17, 0)  # the empty last line: sections
    assert {"data", "model", "loss", "optimizer", "schedule", "regularization", "stop", "metrics"} <= set(top)
    layers = await _labels(client, uri, 9, 16)  # after `->`: layers and the file's blocks
    assert {"dense", "relu", "conv2d", "mlp"} <= set(layers) and "adam" not in layers
    assert layers["dense"].detail == "dense(units, init = he, bias = true)"
    assert "Fully connected layer" in layers["dense"].documentation.value
    kwargs = await _labels(client, uri, 10, 19)  # inside `dense(`: its arguments
    assert ["units", "init", "bias", "share"] == list(kwargs)
    assert kwargs["init"].detail.startswith("init: an initialiser: ") and kwargs["init"].detail.endswith("= he")
    assert kwargs["units"].detail == "units: an integer >= 1 (required)"
    keys = await _labels(client, uri, 2, 2)  # a key of data
    assert {"source", "split", "batch", "normalize"} <= set(keys) and "max" not in keys


@e2e
async def test_hover_docs_and_shapes(client: LanguageClient):
    uri = _open(client, "hover", SPEC)

    async def hover(line, character):
        h = await client.text_document_hover_async(types.HoverParams(text_document=_doc(uri),
                                                                     position=_pos(line, character)))
        return h.contents.value, h.range

    doc, rng = await hover(13, 14)  # `adam`
    assert "adam(lr = 0.001, b1 = 0.9, b2 = 0.999, eps = 1e-08)" in doc and "Kingma & Ba" in doc
    assert rng == _range(13, 12, 16)
    assert "logits: f32[10]" in (await hover(9, 4))[0]  # where it is defined
    assert "logits: f32[10]" in (await hover(12, 28))[0]  # where the loss reads it
    assert "h: f32[32]" in (await hover(9, 11))[0]
    assert "logits.dense0: f32[10]" in (await hover(9, 17))[0]  # the layer `dense(10)`
    assert "h.mlp0: f32[32]" in (await hover(8, 17))[0]  # the block use `mlp(32)`
    assert "`data.split`" in (await hover(2, 3))[0]  # a key's documentation


@e2e
async def test_definition(client: LanguageClient):
    uri = _open(client, "definition", SPEC)

    async def goto(line, character):
        loc = await client.text_document_definition_async(types.DefinitionParams(
            text_document=_doc(uri), position=_pos(line, character)))
        return (loc.uri, loc.range)

    assert await goto(8, 16) == (uri, _range(7, 8, 11))  # `mlp` in `x -> mlp(32)` -> `block mlp`
    assert await goto(9, 11) == (uri, _range(8, 2, 3))  # `h` in `h -> dense(10)` -> `h = ...`
    assert await goto(12, 26) == (uri, _range(9, 2, 8))  # `logits` in the loss -> `logits = ...`
    assert await goto(8, 11) == (uri, _range(6, 8, 9))  # `x` -> `input x`
    assert await goto(7, 28) == (uri, _range(7, 12, 17))  # `width` in the body -> the parameter


@e2e
async def test_document_symbols(client: LanguageClient):
    uri = _open(client, "symbols", SPEC)
    result = await client.text_document_document_symbol_async(types.DocumentSymbolParams(text_document=_doc(uri)))
    assert [s.name for s in result] == ["data", "model", "loss", "optimizer", "stop", "metrics"]
    model = result[1]
    assert [(c.name, c.kind, c.detail) for c in model.children] == [
        ("x", types.SymbolKind.Variable, "f32[64]"), ("mlp", types.SymbolKind.Function, "block mlp(width)"),
        ("h", types.SymbolKind.Variable, "f32[32]"), ("logits", types.SymbolKind.Variable, "f32[10]")]
    assert model.range == types.Range(start=_pos(5, 0), end=_pos(10, 1))
    assert [c.name for c in result[0].children] == ["source", "split"]


# ---- formatting and quick fixes ----------------------------------------------------------------


@e2e
async def test_formatting(client: LanguageClient):
    fmt = pytest.importorskip("trainc.compiler.fmt")
    loss = "loss      = cross_entropy(logits, target)\n"
    messy = "loss=cross_entropy( logits,target )  # é 🙂\n" + SPEC.replace(loss, "")
    uri = _open(client, "format", messy)
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=_doc(uri), options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    (edit,) = edits
    last = len(messy.split("\n")) - 1  # the text ends with a newline: the end is the start of the empty last line
    assert edit.range == types.Range(start=_pos(0, 0), end=_pos(last, 0))
    assert edit.new_text == fmt.format_text(messy, "format.train") != messy
    broken = _open(client, "format-broken", "model {\n  input x: f32[64\n")
    assert await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=_doc(broken), options=types.FormattingOptions(tab_size=2, insert_spaces=True))) in (None, [], ())


@e2e
async def test_quick_fix_for_did_you_mean(client: LanguageClient):
    text = SPEC.replace("adam(", "adamm(")
    uri = _open(client, "quickfix", text)
    (d,) = (await _published(client, uri, 1)).diagnostics
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=_doc(uri), range=d.range, context=types.CodeActionContext(diagnostics=[d])))
    (action,) = actions
    assert (action.title, action.kind) == ("Replace 'adamm' with 'adam'", types.CodeActionKind.QuickFix)
    (edit,) = action.edit.changes[uri]
    assert (edit.range, edit.new_text) == (_range(13, 12, 17), "adam")


# ---- the pure helpers --------------------------------------------------------------------------


@pytest.mark.parametrize("encoding, col, units", [
    ("utf-16", 0, 0), ("utf-16", 2, 2), ("utf-16", 3, 3), ("utf-16", 4, 5), ("utf-16", 5, 6),
    ("utf-8", 2, 3), ("utf-8", 3, 6), ("utf-8", 4, 10), ("utf-32", 4, 4),
])
def test_positions_round_trip(encoding, col, units):
    lines = lsp.Lines("x\naé中🙂b", encoding)  # a, é, 中, 🙂, b at code points 0..4
    assert lines.position(1, col) == _pos(1, units)
    assert lines.offset(_pos(1, units)) == (1, col)


def test_a_position_inside_a_surrogate_pair_is_its_character():
    assert lsp.Lines("🙂b").offset(_pos(0, 1)) == (0, 0)


def test_a_lone_surrogate_counts_as_its_three_bytes_in_utf8():  # JSON carries them; was a UnicodeEncodeError
    assert [lsp.units("a\ud800b", e) for e in ("utf-8", "utf-16", "utf-32")] == [5, 3, 3]


def test_a_bug_in_trainc_is_an_internal_error_not_a_crash(monkeypatch):
    """lint raising: diagnostics says so (E000, at the start); parse raising: hover and symbols answer nothing."""
    def boom(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(lsp, "lint", boom)
    (d,) = lsp.diagnostics("loss = 1\n", "t.train")
    assert (d.code, d.range.start) == ("E000", _pos(0, 0))
    assert d.message.startswith("internal error: RuntimeError: boom\n")
    monkeypatch.setattr(lsp, "parse", boom)
    lsp.analyze.cache_clear()
    assert lsp.analyze("loss = 2\n", "t.train") == lsp.Analysis(None, None)
    assert lsp.symbols("loss = 2\n", "t.train") == []
    lsp.analyze.cache_clear()  # no answer of the broken parser for later tests


@pytest.mark.parametrize("text, expected, unexpected", [
    ("loss = ", {"cross_entropy", "mse"}, {"adam"}),
    ("optimizer = adam(lr = 1e-3, ", {"b1", "groups", "freeze"}, {"lr"}),
    ("schedule = warmup(5 steps) then ", {"cosine", "step"}, set()),
    ("metrics = [accuracy, ", {"top_k", "f1"}, set()),
    ("data {\n  normalize = ", {"standard", "minmax", "none"}, set()),
    ("stop {\n  early = plateau(val.loss, mode = ", {"min", "max", "auto"}, set()),
    ("model {\n  input x: f32[4]\n  h = x -> dense(4, init = ", {"he", "xavier", "normal"}, {"relu"}),
    ("model {\n  input x: f32[4]\n  h = ", {"x", "add", "concat"}, {"h", "dense"}),
    ("model {\n  input x: f32[4]\n  block b(w, p = 0.1) { dense(w) }\n  h = x -> b(", {"w", "p"}, {"units"}),
    ("model {\n  ", {"input", "block"}, set()),
    ("run = { ", {"seed", "device"}, set()),
    ("x = \"dense", set(), {"dense"}),
    ("# loss = ", set(), {"mse"}),
])
def test_completion_contexts(text, expected, unexpected):
    lines = text.split("\n")
    labels = {i.label for i in lsp.completions(text, _pos(len(lines) - 1, len(lines[-1])))}
    assert expected <= labels and not (unexpected & labels)


def _apply(text: str, edit: types.TextEdit) -> str:
    lines = text.split("\n")
    r = edit.range
    assert r.start.line == r.end.line
    line = lines[r.start.line]
    lines[r.start.line] = line[:r.start.character] + edit.new_text + line[r.end.character:]
    return "\n".join(lines)


def test_quick_fixes_remove_their_diagnostic_in_every_golden_error():
    fixed = removals = 0
    for file in sorted((Path(__file__).parent.parent / "specs" / "errors").glob("*.train")):
        path, text = str(file), file.read_text(encoding="utf-8")
        for d in lint(text, path):
            if not (d.help or "").startswith("did you mean") and d.fix is None:
                continue
            whole = types.Range(start=_pos(0, 0), end=_pos(10_000, 0))
            actions = [a for a in lsp.code_actions(text, path, "u", whole) if a.diagnostics[0].code == d.code
                       and a.diagnostics[0].range.start.line == d.span.line - 1]
            assert actions, f"{path}: no quick fix for {d.code} {d.message}"
            after = lint(_apply(text, actions[0].edit.changes["u"][0]), path)
            assert not [e for e in after if (e.code, e.span.line, e.message) == (d.code, d.span.line, d.message)]
            fixed += 1
            removals += d.fix is not None and actions[0].title.startswith("Remove '-> ")
    assert fixed >= 8 and removals >= 5  # W401's ` -> relu` removal among them

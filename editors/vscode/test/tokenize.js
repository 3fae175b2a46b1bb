// Tokenize .train text with the TextMate engine VS Code itself uses (vscode-textmate + vscode-oniguruma).
//
//   node test/tokenize.js FILE...   prints {file: [[scopes of each character] per line]} as JSON,
//                                   which tests/test_editors.py compares with its own tokenizer.
'use strict';

const fs = require('fs');
const path = require('path');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const GRAMMAR = path.join(__dirname, '..', 'syntaxes', 'trainc.tmLanguage.json');

let registry;

async function loadGrammar() {
  if (!registry) {
    const wasm = fs.readFileSync(path.join(path.dirname(require.resolve('vscode-oniguruma')), 'onig.wasm'));
    await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
    registry = new vsctm.Registry({
      onigLib: Promise.resolve({
        createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
        createOnigString: (s) => new oniguruma.OnigString(s),
      }),
      loadGrammar: async (scopeName) => scopeName === 'source.trainc'
        ? vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR, 'utf8'), GRAMMAR)
        : null,
    });
  }
  return registry.loadGrammar('source.trainc');
}

// Tokens of each line: [{text, scopes}], the rule stack carried from line to line.
async function tokenize(text) {
  const grammar = await loadGrammar();
  let stack = vsctm.INITIAL;
  return text.split(/\r?\n/).map((line) => {
    const result = grammar.tokenizeLine(line, stack);
    stack = result.ruleStack;
    return result.tokens.map((t) => ({ text: line.slice(t.startIndex, t.endIndex), scopes: t.scopes }));
  });
}

// The scopes of every character, line by line: the form the Python tokenizer produces.
async function charScopes(text) {
  return (await tokenize(text)).map((tokens) => tokens.flatMap((t) => Array.from(t.text, () => t.scopes)));
}

module.exports = { tokenize, charScopes };

if (require.main === module) {
  (async () => {
    const out = {};
    for (const file of process.argv.slice(2)) out[file] = await charScopes(fs.readFileSync(file, 'utf8'));
    process.stdout.write(JSON.stringify(out));
  })();
}

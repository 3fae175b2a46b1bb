// Scope tests of the TextMate grammar, through the engine VS Code uses. Run: npm test (after npm install).
'use strict';

const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const { tokenize } = require('./tokenize');

const ROOT = path.join(__dirname, '..', '..', '..');

// The scopes of the `nth` token whose text is exactly `text` on line `line` (0-based).
function scopesOf(lines, line, text, nth = 0) {
  const hits = lines[line].filter((t) => t.text.trim() === text);
  assert.ok(hits.length > nth, `no token '${text}' on line ${line + 1}: ${JSON.stringify(lines[line])}`);
  return hits[nth].scopes;
}

function expectScope(lines, line, text, scope, nth = 0) {
  const scopes = scopesOf(lines, line, text, nth);
  assert.ok(scopes.includes(scope), `'${text}' on line ${line + 1}: expected ${scope} in ${scopes.join(' ')}`);
}

test('examples/digits.train', async () => {
  const text = fs.readFileSync(path.join(ROOT, 'examples', 'digits.train'), 'utf8');
  const lines = await tokenize(text);
  const at = (needle) => text.split('\n').findIndex((l) => l.includes(needle));

  assert.deepStrictEqual(lines[0].map((t) => t.scopes.at(-1)).filter((s) => !s.startsWith('punctuation')),
    ['comment.line.number-sign.trainc']);
  expectScope(lines, at('data {'), 'data', 'entity.name.section.trainc');
  expectScope(lines, at('source'), 'source', 'variable.other.property.trainc');
  expectScope(lines, at('source'), 'csv', 'entity.name.function.trainc');
  expectScope(lines, at('source'), 'csv', 'support.function.source.trainc');
  expectScope(lines, at('source'), '"', 'punctuation.definition.string.begin.trainc');
  expectScope(lines, at('source'), 'data/digits.csv', 'string.quoted.double.trainc');
  expectScope(lines, at('source'), 'target', 'variable.other.property.trainc');
  expectScope(lines, at('split '), '0.8', 'constant.numeric.trainc');
  expectScope(lines, at('normalize'), 'standard', 'support.constant.option.trainc');
  expectScope(lines, at('shuffle'), 'true', 'constant.language.boolean.trainc');
  expectScope(lines, at('input x'), 'input', 'keyword.other.input.trainc');
  expectScope(lines, at('input x'), 'x', 'variable.other.input.trainc');
  expectScope(lines, at('input x'), 'f32', 'storage.type.dtype.trainc');
  expectScope(lines, at('block mlp'), 'block', 'keyword.other.block.trainc');
  expectScope(lines, at('block mlp'), 'mlp', 'entity.name.function.block.trainc');
  expectScope(lines, at('block mlp'), 'width', 'variable.parameter.trainc');
  expectScope(lines, at('block mlp'), 'dense', 'support.function.layer.trainc');
  expectScope(lines, at('block mlp'), 'he', 'support.function.init.trainc');
  expectScope(lines, at('block mlp'), '->', 'keyword.operator.pipeline.trainc');
  expectScope(lines, at('logits ='), 'mlp', 'entity.name.function.trainc');
  expectScope(lines, at('loss '), 'loss', 'entity.name.section.trainc');
  expectScope(lines, at('loss '), 'cross_entropy', 'support.function.loss.trainc');
  expectScope(lines, at('optimizer'), 'adamw', 'support.function.optimizer.trainc');
  expectScope(lines, at('schedule'), '50', 'constant.numeric.trainc');
  expectScope(lines, at('schedule'), 'steps', 'keyword.other.unit.trainc');
  expectScope(lines, at('schedule'), 'then', 'keyword.control.then.trainc');
  expectScope(lines, at('schedule'), 'cosine', 'support.function.schedule.trainc');
  expectScope(lines, at('max '), 'epochs', 'keyword.other.unit.trainc');
  expectScope(lines, at('when '), 'val', 'variable.language.split.trainc');
  expectScope(lines, at('when '), '>=', 'keyword.operator.comparison.trainc');
  expectScope(lines, at('metrics'), 'accuracy', 'support.function.metric.trainc');
  expectScope(lines, at('run {'), 'run', 'entity.name.section.trainc');
});

test('lines', async () => {
  const lines = await tokenize([
    'budget = 10 min  # wall clock',
    'schedule = warmup(10%) then plateau(val.loss)',
    'h = x -> repeat 3 { conv2d(8, 3) } -> dense(10)',
    'source = csv("C:\\data", target = "a \\" # b")',
    'a == b',
  ].join('\n'));
  expectScope(lines, 0, 'min', 'keyword.other.unit.trainc');
  expectScope(lines, 0, '# wall clock'.slice(1).trim(), 'comment.line.number-sign.trainc');
  expectScope(lines, 1, '%', 'keyword.other.unit.trainc');
  expectScope(lines, 2, 'repeat', 'keyword.control.repeat.trainc');
  expectScope(lines, 2, 'conv2d', 'support.function.layer.trainc');
  expectScope(lines, 3, '\\d', 'invalid.illegal.unknown-escape.trainc');
  expectScope(lines, 3, '\\"', 'constant.character.escape.trainc');
  expectScope(lines, 3, '# b', 'string.quoted.double.trainc');
  expectScope(lines, 4, '==', 'keyword.operator.comparison.trainc');
  assert.ok(!scopesOf(lines, 4, 'a').includes('variable.other.property.trainc'), '`a ==` is not a key');
});

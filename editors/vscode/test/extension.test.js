// The client in extension.js, with `vscode` and the LanguageClient replaced by stubs: which command it
// starts, and what it does when the server cannot start. Run: npm test (after npm install).
'use strict';

const assert = require('node:assert');
const fs = require('node:fs');
const Module = require('node:module');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');

// A fresh extension.js loaded against stubs; `settings` are what getConfiguration('trainc') returns.
function load({ settings = {}, folder, startFails = false }) {
  const seen = { clients: [], errors: [], commands: {} };
  const vscode = {
    workspace: {
      getConfiguration: () => ({ get: (key, dflt) => (key in settings ? settings[key] : dflt) }),
      workspaceFolders: folder ? [{ uri: { fsPath: folder } }] : undefined,
      onDidChangeConfiguration: () => ({ dispose() {} }),
    },
    window: { showErrorMessage: async (msg) => { seen.errors.push(msg); } },
    commands: {
      registerCommand: (name, fn) => { seen.commands[name] = fn; return { dispose() {} }; },
      executeCommand: () => {},
    },
  };
  class LanguageClient {
    constructor(id, name, serverOptions, clientOptions) {
      Object.assign(this, { id, serverOptions, clientOptions, stopped: false });
      seen.clients.push(this);
    }
    async start() { if (startFails) throw new Error('spawn trainc ENOENT'); }
    async stop() { this.stopped = true; }
  }
  const stubs = { vscode, 'vscode-languageclient/node': { LanguageClient, TransportKind: { stdio: 0 } } };
  const original = Module._load;
  Module._load = function (request, ...rest) {
    return request in stubs ? stubs[request] : original.call(this, request, ...rest);
  };
  try {
    const file = require.resolve('../extension.js');
    delete require.cache[file];
    return { extension: require(file), seen };
  } finally {
    Module._load = original;
  }
}

const context = () => ({ subscriptions: [] });

test('starts `trainc lsp` over stdio for trainc documents', async () => {
  const { extension, seen } = load({});
  await extension.activate(context());
  const [client] = seen.clients;
  assert.deepStrictEqual(client.serverOptions.run, { command: 'trainc', args: ['lsp'], transport: 0 });
  assert.deepStrictEqual(client.clientOptions.documentSelector.map((s) => s.language), ['trainc', 'trainc']);
  assert.deepStrictEqual(seen.errors, []);
});

test('prefers the workspace virtual environment, then the setting', async () => {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'trainc-'));
  const venv = path.join(folder, '.venv', process.platform === 'win32' ? 'Scripts' : 'bin');
  fs.mkdirSync(venv, { recursive: true });
  const exe = path.join(venv, process.platform === 'win32' ? 'trainc.exe' : 'trainc');
  fs.writeFileSync(exe, '');
  let { extension, seen } = load({ folder });
  await extension.activate(context());
  assert.strictEqual(seen.clients[0].serverOptions.run.command, exe);

  ({ extension, seen } = load({ folder, settings: { 'server.path': '${workspaceFolder}/tools/trainc' } }));
  await extension.activate(context());
  assert.strictEqual(seen.clients[0].serverOptions.run.command, `${folder}/tools/trainc`);

  ({ extension, seen } = load({ settings: { 'server.path': '~/bin/trainc' } }));
  await extension.activate(context());
  assert.strictEqual(seen.clients[0].serverOptions.run.command, path.join(os.homedir(), 'bin/trainc'));
});

test('a server that does not start is reported, not thrown', async () => {
  const { extension, seen } = load({ startFails: true });
  await extension.activate(context());
  assert.strictEqual(seen.errors.length, 1);
  assert.match(seen.errors[0], /could not start 'trainc lsp'.*ENOENT.*trainc\.server\.path/);
});

test('the restart command stops the running client and starts a new one', async () => {
  const { extension, seen } = load({});
  await extension.activate(context());
  await seen.commands['trainc.restartServer']();
  assert.strictEqual(seen.clients.length, 2);
  assert.ok(seen.clients[0].stopped && !seen.clients[1].stopped);
  await extension.deactivate();
  assert.ok(seen.clients[1].stopped);
});

// The VS Code client of `trainc lsp`: starts the language server over stdio for .train files.
// Highlighting comes from the TextMate grammar alone, so it works even when the server does not start.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client;

// The `trainc` to run: the `trainc.server.path` setting, `${workspaceFolder}` and `~` expanded; with the
// default `trainc`, the workspace's own virtual environment wins over PATH (a fresh clone's quickstart
// installs there).
function serverCommand() {
  const configured = vscode.workspace.getConfiguration('trainc').get('server.path', 'trainc') || 'trainc';
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  if (configured !== 'trainc') {
    return configured
      .replace(/\$\{workspaceFolder\}/g, folder ?? '.')
      .replace(/^~(?=$|[\\/])/, os.homedir());
  }
  if (folder) {
    const venv = process.platform === 'win32'
      ? path.join(folder, '.venv', 'Scripts', 'trainc.exe')
      : path.join(folder, '.venv', 'bin', 'trainc');
    if (fs.existsSync(venv)) return venv;
  }
  return 'trainc';
}

async function startClient() {
  const command = serverCommand();
  const run = { command, args: ['lsp'], transport: TransportKind.stdio };
  client = new LanguageClient(
    'trainc',
    'trainc language server',
    { run, debug: run },
    {
      documentSelector: [
        { scheme: 'file', language: 'trainc' },
        { scheme: 'untitled', language: 'trainc' },
      ],
      outputChannelName: 'trainc',
    },
  );
  try {
    await client.start();
  } catch (err) {
    client = undefined;
    const choice = await vscode.window.showErrorMessage(
      `trainc: could not start '${command} lsp' (${err.message ?? err}). ` +
        'Install trainc (pip install -e .) or set trainc.server.path.',
      'Open Settings',
    );
    if (choice === 'Open Settings') {
      vscode.commands.executeCommand('workbench.action.openSettings', 'trainc.server.path');
    }
  }
}

async function restartClient() {
  if (client) {
    await client.stop();
    client = undefined;
  }
  await startClient();
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('trainc.restartServer', restartClient),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('trainc.server.path')) restartClient();
    }),
  );
  await startClient();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };

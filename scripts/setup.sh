#!/usr/bin/env bash
# Set-up shared by the two quickstart commands. Idempotent and quick when nothing changed:
#   - checks for Python 3.11+
#   - makes sure `clang` is on PATH (tinygrad's CPU device compiles its kernels with it),
#     installing it with apt-get when we can (root, or sudo without a password)
#   - creates .venv and installs trainc (editable) with its test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
say() { printf '%s\n' "setup: $*" >&2; }
die() { printf '%s\n' "setup: error: $*" >&2; exit 1; }

command -v "$PY" >/dev/null || die "no $PY on PATH; install Python 3.11 or newer (e.g. apt-get install python3)"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
  die "trainc needs Python 3.11 or newer; $PY is $("$PY" --version 2>&1). Set PYTHON=/path/to/python3.11 and rerun."

as_root() {  # run a command as root: directly, or through sudo when it needs no password
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1
  fi
}

apt_install() {
  command -v apt-get >/dev/null && as_root true || return 1
  say "installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v clang >/dev/null; then
  if [ "$(uname -s)" = Darwin ]; then
    die "clang is missing: run 'xcode-select --install', then rerun"
  fi
  apt_install clang ||
    die "clang is missing and could not be installed here. tinygrad's CPU device needs it:
       sudo apt-get install clang      (Debian/Ubuntu)
       sudo dnf install clang          (Fedora)
     then rerun this command."
  command -v clang >/dev/null || die "clang was installed but is not on PATH"
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt_install "python${ver}-venv" || apt_install python3-venv ||
      die "'$PY -m venv' failed; install the venv module (Debian/Ubuntu: sudo apt-get install python3-venv)"
    "$PY" -m venv .venv || die "'$PY -m venv .venv' failed"
  fi
fi

stamp=.venv/.trainc-installed
want=$(cat pyproject.toml setup.py | "$PY" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x .venv/bin/trainc ]; then
  say "installing trainc and its dependencies into .venv (lark, tinygrad, numpy, pyyaml, typer, pytest, matplotlib)"
  .venv/bin/python -m pip install --disable-pip-version-check -q -e '.[test,plot]' ||
    die "pip install failed (see above); check the network and rerun"
  echo "$want" > "$stamp"
fi

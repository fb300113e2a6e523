#!/usr/bin/env bash
# tests/browser/npm_ci.sh: installs the browser tests' npm packages (package-lock.json, exactly)
# into tests/browser/node_modules (not committed), unless the ones there came from this very
# lock file. CTest runs it as the fixture of the browser tests (browser.npm_ci).
set -euo pipefail
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if ! command -v node >/dev/null 2>&1; then
  echo "node is not installed: nothing to install (the browser tests will be skipped)"
  exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "FAIL: node is installed but npm is not" >&2; exit 1; }
stamp=$dir/node_modules/.ess-package-lock.json
if cmp -s "$dir/package-lock.json" "$stamp"; then
  echo "tests/browser/node_modules matches package-lock.json"
  exit 0
fi
cd "$dir"
npm ci --no-audit --no-fund --loglevel=error
cp package-lock.json "$stamp"

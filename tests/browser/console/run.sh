#!/usr/bin/env bash
# tests/browser/console/run.sh: the console's browser test (CTest browser.console; see
# console_test.js). Skipped (exit 77) when Node.js is not installed.
set -euo pipefail
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if ! command -v node >/dev/null 2>&1; then
  echo "SKIP: node is not installed; the console's browser test needs Node.js >= 20 (and npm)"
  exit 77
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 20)); then
  echo "FAIL: node $(node --version) is too old for playwright-core: Node.js >= 20 is needed" >&2
  exit 1
fi
if [[ ! -d "$dir/../node_modules/playwright-core" ]]; then
  echo "FAIL: tests/browser/node_modules has no playwright-core: run tests/browser/npm_ci.sh" >&2
  exit 1
fi
exec node "$dir/console_test.js"

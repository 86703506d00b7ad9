#!/usr/bin/env bash
# `npm test`: type check and build, lint, then every unit, render and mock test.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in ruby nginx shellcheck openssl iptables-restore sudo; do
    command -v "$tool" >/dev/null || { echo "npm test needs '$tool' (Debian: apt-get install ruby nginx-light libnginx-mod-stream shellcheck openssl iptables sudo)" >&2; exit 1; }
done
rm -rf dist
echo "== type check (tsc --strict)"
npx tsc -p tsconfig.json
echo "== lint (eslint)"
npx eslint --max-warnings 0 .
echo "== tests (node --test)"
mapfile -t files < <(find dist/tests -name '*.test.js' -not -path 'dist/tests/integration/*' | sort)
node --test --test-concurrency=2 "${files[@]}"

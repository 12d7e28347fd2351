#!/usr/bin/env bash
# Packs the alertd feed as a Botpress v12 module archive: OUT_DIR/alertd-feed.tgz, holding
# package.json, dist/backend/index.js and the feed hook's code beside it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-.}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/dist/backend"
cp "$here/module/package.json" "$work/"
cp "$here/module/dist/backend/index.js" "$work/dist/backend/"
cp "$here/hooks/after_server_start/alertd_feed.js" "$work/dist/backend/"
tar -czf "$out/alertd-feed.tgz" -C "$work" package.json dist
echo "$out/alertd-feed.tgz"

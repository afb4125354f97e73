#!/usr/bin/env bash
# Builds the Go tools kvbind's checks run, each pinned by the go.mod in its own folder here
# (one module each: their dependencies disagree), and caches them outside target/ keyed by
# those go.mod and go.sum files and the sources:
#   e2e/tools/build.sh TOOL...   (actionlint, promtool, argocd-health)
# prints the folder that holds them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
key="$(cat "$here/build.sh" "$here"/*/go.mod "$here"/*/go.sum "$here"/*/*.go | sha256sum | cut -c1-12)"
out="${KVBIND_CACHE:-$HOME/.cache/kvbind}/tools/$key"
mkdir -p "$out"
export GOFLAGS=-mod=mod CGO_ENABLED=0
for tool in "$@"; do
  [[ -x $out/$tool ]] && continue
  case $tool in
    actionlint) package=github.com/rhysd/actionlint/cmd/actionlint ;;
    promtool) package=github.com/prometheus/prometheus/cmd/promtool ;;
    argocd-health) package=. ;;
    *) echo "build.sh: no tool $tool" >&2; exit 2 ;;
  esac
  echo "building $tool (once per pinned version)" >&2
  (cd "$here/$tool" && go build -trimpath -ldflags "-s -w" -o "$out/$tool.partial" "$package") >&2
  mv "$out/$tool.partial" "$out/$tool"
done
echo "$out"

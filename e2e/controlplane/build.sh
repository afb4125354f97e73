#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kubectl and helm from the Go modules pinned in this
# folder, and the kstatus checker from ../kstatus, and caches them outside target/, keyed by the pinned version and
# go.sum, so only the first run on a machine pays for the build.
# Prints the folder that holds the binaries.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
k8s_version="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$here/go.mod")"
kstatus="$here/../kstatus"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" "$here/cmd/etcd/main.go" "$kstatus/go.mod" "$kstatus/go.sum" "$kstatus/main.go" | sha256sum | cut -c1-12)"
cache="${KVBIND_CACHE:-$HOME/.cache/kvbind}"
out="$cache/controlplane/$k8s_version-$key"
if [[ -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" && -x "$out/etcd" && -x "$out/kubectl" && -x "$out/helm" && -x "$out/kstatus" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out.partial"
cd "$here"
# kube-openapi serves broken OpenAPI when built with Go's jsonv2 experiment.
export GOEXPERIMENT=nojsonv2 GOFLAGS=-mod=mod CGO_ENABLED=0
# Without these the server reports v0.0.0-master, which clients misread.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1"
  ldflags+=" -X $pkg.gitMinor=$(cut -d. -f2 <<<"$k8s_version")"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
echo "building the control plane $k8s_version into $out (first run only)" >&2
go build -trimpath -ldflags "$ldflags" -o "$out.partial/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
# Shares most packages with kube-apiserver, so it costs little once that is built.
go build -trimpath -ldflags "$ldflags" -o "$out.partial/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager >&2
go build -trimpath -ldflags "$ldflags" -o "$out.partial/kubectl" k8s.io/kubernetes/cmd/kubectl >&2
go build -trimpath -ldflags "-s -w" -o "$out.partial/etcd" ./cmd/etcd >&2
go build -trimpath -ldflags "-s -w" -o "$out.partial/helm" helm.sh/helm/v3/cmd/helm >&2
# What Flux and kstatus-based tools read an object's health with (sigs.k8s.io/cli-utils).
(cd "$kstatus" && go build -trimpath -ldflags "-s -w" -o "$out.partial/kstatus" .) >&2
rm -rf "$out"
mv "$out.partial" "$out"
echo "$out"

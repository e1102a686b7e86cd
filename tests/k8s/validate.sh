#!/usr/bin/env bash
# Offline validation of drainmet's Kubernetes manifests and container files
# (docs/operations.md "Kubernetes"; spec/TOOLCHAIN.md §4.3). No cluster is contacted: the
# only kubectl command run is `kubectl kustomize`.
#
#   tests/k8s/validate.sh            all checks, then the self-test
#
# 1. `kubectl kustomize` renders k8s/overlays/dev and k8s/overlays/prod;
# 2. every rendered object is validated against the Kubernetes schemas (npm
#    kubernetes-models) and checked for unknown fields (check-objects.mjs);
# 3. drainmet's own rules hold in each overlay (check-policy.mjs: non-root, read-only root
#    filesystem, probes, resources, PDBs, HPA, TLS ingress, Redis AOF ...);
# 4. yamllint on every YAML file of k8s/, deploy/compose.yaml, deploy/docker/ and tests/k8s/;
# 5. dockerfilelint on deploy/docker/Dockerfile*;
# 6. self-test: the overlays of tests/k8s/selftest/ (a misspelled field, a wrong type, an
#    unknown kind) must each be rejected with the expected message.
# Exit status 0 when everything passed, 1 when a check failed (each failure is printed,
# and a summary names the failed steps), 2 when a tool is missing.
#
# Environment: KUBECTL (default: kubectl on PATH; Debian's kubernetes-client 1.20 and
# kubectl 1.32 both work), NODE (default node), NPM (default npm). The npm packages are
# installed with `npm ci` from tests/k8s/package-lock.json into tests/k8s/node_modules when
# that folder is missing or older than the lock file.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
kubectl=${KUBECTL:-kubectl}
node=${NODE:-node}
npm=${NPM:-npm}

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "validate.sh: $1 not found ($2)" >&2
    exit 2
  fi
}
need "$kubectl" "apt-get install kubernetes-client, or set KUBECTL"
need "$node" "apt-get install nodejs"
need yamllint "apt-get install yamllint"

if [ ! -d "$here/node_modules" ] || [ "$here/package-lock.json" -nt "$here/node_modules" ]; then
  need "$npm" "apt-get install npm"
  echo "== npm ci (tests/k8s/node_modules)"
  if ! (cd "$here" && "$npm" ci --no-audit --no-fund --loglevel=error); then
    echo "validate.sh: npm ci failed" >&2
    exit 2
  fi
  touch "$here/node_modules"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/drainmet-k8s.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=()

# render NAME DIR: kubectl kustomize DIR > $work/NAME.yaml; prints kustomize's errors.
render() {
  if ! "$kubectl" kustomize "$2" >"$work/$1.yaml" 2>"$work/$1.err"; then
    echo "FAIL kustomize $2:"
    sed 's/^/  /' "$work/$1.err"
    return 1
  fi
  # kustomize v5 warns about commonLabels, bases, patchesStrategicMerge: kept on purpose
  # for Debian's kubectl 1.20 (k8s/base/kustomization.yaml). Other messages are shown.
  grep -v -e "^# Warning: '\(commonLabels\|bases\|patchesStrategicMerge\)' is deprecated" "$work/$1.err" || true
  echo "ok   kustomize $2 ($(grep -c '^kind:' "$work/$1.yaml") objects)"
}

echo "== kubectl kustomize ($("$kubectl" version --client 2>/dev/null | head -n1))"
for overlay in dev prod; do
  render "$overlay" "$root/k8s/overlays/$overlay" || failed+=("render $overlay")
done

echo "== schema and unknown fields (kubernetes-models)"
for overlay in dev prod; do
  [ -s "$work/$overlay.yaml" ] || continue
  (cd "$work" && "$node" "$here/check-objects.mjs" "$overlay.yaml") || failed+=("schema $overlay")
done

echo "== drainmet rules"
for overlay in dev prod; do
  [ -s "$work/$overlay.yaml" ] || continue
  "$node" "$here/check-policy.mjs" "$overlay" "$work/$overlay.yaml" || failed+=("rules $overlay")
done

echo "== yamllint"
yaml_files=()
while IFS= read -r f; do yaml_files+=("$f"); done < <(
  cd "$root" && find k8s deploy/docker tests/k8s -path tests/k8s/node_modules -prune -o \
    \( -name '*.yaml' -o -name '*.yml' \) -type f -print | sort
)
yaml_files+=(deploy/compose.yaml)
if (cd "$root" && yamllint -f parsable -c "$here/yamllint.yaml" "${yaml_files[@]}"); then
  echo "ok   yamllint (${#yaml_files[@]} files)"
else
  failed+=("yamllint")
fi

echo "== dockerfilelint"
for dockerfile in "$root"/deploy/docker/Dockerfile*; do
  [ -f "$dockerfile" ] || continue
  if out=$("$here/node_modules/.bin/dockerfilelint" "$dockerfile" 2>&1); then
    echo "ok   dockerfilelint ${dockerfile#"$root"/}"
  else
    echo "FAIL dockerfilelint ${dockerfile#"$root"/}:"
    printf '%s\n' "$out" | sed 's/^/  /'
    failed+=("dockerfilelint ${dockerfile#"$root"/}")
  fi
done

# The self-test: each broken overlay must render (the fault is in a field, not in the
# kustomization) and then be rejected by check-objects.mjs with each expected message.
echo "== self-test: broken manifests are rejected"
selftest() {  # selftest NAME EXPECTED...
  local name=$1 out
  shift
  if ! "$kubectl" kustomize "$here/selftest/$name" >"$work/selftest-$name.yaml" 2>"$work/selftest-$name.err"; then
    echo "FAIL self-test $name: did not render:"
    sed 's/^/  /' "$work/selftest-$name.err"
    return 1
  fi
  if out=$(cd "$work" && "$node" "$here/check-objects.mjs" "selftest-$name.yaml"); then
    echo "FAIL self-test $name: accepted, but it is broken"
    return 1
  fi
  local expected
  for expected in "$@"; do
    if ! grep -qF -- "$expected" <<<"$out"; then
      echo "FAIL self-test $name: rejected, but without \"$expected\":"
      printf '%s\n' "$out" | grep FAIL | sed 's/^/  /'
      return 1
    fi
  done
  echo "ok   self-test $name: rejected ($(grep -c '^FAIL' <<<"$out") failures, as expected)"
}
selftest misspelled "readinesProbe: unknown field" "minAvaliable: unknown field" || failed+=("self-test misspelled")
selftest wrong-type "/spec/replicas: must be integer" "/spec/maxReplicas: must be integer" ||
  failed+=("self-test wrong-type")
selftest unknown-kind "unknown apiVersion/kind policy/v1/PodDisruptionBugdet" || failed+=("self-test unknown-kind")

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "validate.sh: FAILED: ${failed[*]}"
  exit 1
fi
echo "validate.sh: all checks passed"

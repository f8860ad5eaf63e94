#!/usr/bin/env bash
# Validates the container build, the local compose stack and the Helm chart
# without a Docker engine or a Kubernetes cluster. CI calls it; so can you:
#
#   deploy/validate.sh            # all checks
#   deploy/validate.sh --list     # what it checks
#
# Everything it needs is installed from PyPI (pinned in
# deploy/validate/requirements.txt) into a virtualenv cached under
# ${SPID_IDP_CACHE:-~/.cache/spid-idp}; later runs reuse it. Nothing else is
# downloaded. Exit status: 0 when every check passes, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
chart="$repo/helm/spid-idp"
requirements="$here/validate/requirements.txt"
checks="$here/validate/checks.py"
cache="${SPID_IDP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spid-idp}"
# Kubernetes versions the rendered objects are validated against: the
# oldest the chart supports (Chart.yaml kubeVersion) and the newest schema
# kubernetes-validate ships.
kube_versions=(1.27.0 1.37.0)

checks_list="
settings        the configuration schema is read from libs/config/src/settings.rs
shellcheck      this script
hadolint        deploy/Dockerfile (rules: deploy/.hadolint.yaml)
dockerfile      Dockerfile contract: stages, cache mounts, non-root, both binaries, ENTRYPOINT
yamllint        compose file, Chart.yaml, values files (rules: deploy/.yamllint.yaml)
compose-schema  docker-compose.yaml against the Compose Specification JSON schema
compose         compose wiring: services, idp.toml keys, env names, ports, health checks
helm-lint       helm lint --strict on the chart, for each values scenario
helm-template   render every scenario (values.schema.json enforced)
helm-refuse     bad values are refused at render time
kube-schema     rendered objects against Kubernetes ${kube_versions[*]} schemas (strict)
yamllint-render rendered manifests
chart-rules     hardening, probes, secrets, wiring, hooks, NetworkPolicy, Ingress, tests
"
if [[ "${1:-}" == "--list" ]]; then
  printf '%s' "$checks_list"
  exit 0
fi

log() { printf '%s\n' "$*"; }

# --- tools ------------------------------------------------------------------
python=""
for candidate in python3.13 python3.12 python3.11 python3.10 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
    "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    python=$(command -v "$candidate")
    break
  fi
done
if [[ -z "$python" ]]; then
  log "validate.sh: needs Python >= 3.11 (tomllib); install python3 from Debian's packages" >&2
  exit 1
fi

venv="$cache/venv"
stamp="$venv/.requirements.sha256"
want=$( (cat "$requirements"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)
if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  log "== installing validation tools into $venv (PyPI, pinned)"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"; then
    rm -rf "$venv"
    log "validate.sh: could not install the tools in $requirements from PyPI" >&2
    exit 1
  fi
  printf '%s\n' "$want" >"$stamp"
else
  log "== validation tools: cached in $venv"
fi
export PATH="$venv/bin:$PATH"
py="$venv/bin/python"

work=$(mktemp -d "${TMPDIR:-/tmp}/spid-idp-validate.XXXXXX")
trap 'rm -rf "$work"' EXIT
rendered="$work/rendered"

# --- running checks ----------------------------------------------------------
names=()
results=()
run() {
  local name=$1
  shift
  log ""
  log "== $name"
  local status=0
  "$@" >"$work/$name.log" 2>&1 || status=$?
  sed 's/^/  /' "$work/$name.log"
  names+=("$name")
  if [[ $status -eq 0 ]]; then
    results+=(PASS)
    log "-- $name: PASS"
  else
    results+=(FAIL)
    log "-- $name: FAIL (exit $status)"
  fi
}

versions() {
  log "helm:        $("$py" -c 'import helm_python as h; print(h.helm_sdk_version(), "(helm-python-sdk", h.helm_c_version() + ")")')"
  log "kubeval:     kubernetes-validate $("$py" -c 'import kubernetes_validate as k; print(k.__version__)')"
  log "hadolint:    $(hadolint --version)"
  log "shellcheck:  $(shellcheck --version | sed -n 's/^version: //p')"
  log "yamllint:    $(yamllint --version)"
  log "compose:     check-jsonschema $(check-jsonschema --version | awk '{print $NF}') (vendor.compose-spec)"
}

# The functions below run in run()'s `||` context, where `set -e` does not
# apply: each failing command returns explicitly.
yamllint_sources() {
  yamllint --strict -c "$here/.yamllint.yaml" \
    "$repo/deploy/compose/docker-compose.yaml" \
    "$chart/Chart.yaml" "$chart/values.yaml" "$chart"/ci/*.yaml || return 1
  log "linted: docker-compose.yaml, Chart.yaml, values.yaml, ci/*.yaml"
}

yamllint_rendered() {
  # Rendered output: the same rules, less the ones about hand-written style
  # (toYaml decides indentation of sequences, long lines come from values).
  [[ -d "$rendered" ]] || { log "nothing rendered (helm-template failed)"; return 1; }
  yamllint --strict -d "{extends: $here/.yamllint.yaml, rules: {line-length: disable, comments: disable, indentation: {spaces: 2, indent-sequences: whatever}}}" "$rendered"/*.yaml || return 1
  local file
  for file in "$rendered"/*.yaml; do log "linted: rendered ${file##*/}"; done
}

kube_schema() {
  [[ -d "$rendered" ]] || { log "nothing rendered (helm-template failed)"; return 1; }
  "$py" "$checks" kube-schema "$rendered" "${kube_versions[@]}"
}

chart_rules() {
  [[ -d "$rendered" ]] || { log "nothing rendered (helm-template failed)"; return 1; }
  "$py" "$checks" chart-policy "$chart" "$rendered"
}

log "spid-idp deployment validation ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
versions

run settings "$py" "$checks" settings
run shellcheck shellcheck --severity=style "$here/validate.sh"
run hadolint hadolint --config "$here/.hadolint.yaml" "$here/Dockerfile"
run dockerfile "$py" "$checks" dockerfile
run yamllint yamllint_sources
run compose-schema check-jsonschema --builtin-schema vendor.compose-spec "$repo/deploy/compose/docker-compose.yaml"
run compose "$py" "$checks" compose
run helm-lint "$py" "$checks" chart-lint "$chart" --kube-version "v${kube_versions[0]}"
run helm-template "$py" "$checks" chart-render "$chart" "$rendered"
run helm-refuse "$py" "$checks" chart-negative "$chart"
run kube-schema kube_schema
run yamllint-render yamllint_rendered
run chart-rules chart_rules

# --- summary -----------------------------------------------------------------
failed=0
log ""
log "== summary"
for i in "${!names[@]}"; do
  printf '  %-16s %s\n' "${names[$i]}" "${results[$i]}"
  [[ "${results[$i]}" == PASS ]] || failed=$((failed + 1))
done
passed=$((${#names[@]} - failed))
log ""
log "validate: ${passed} passed, ${failed} failed"
[[ $failed -eq 0 ]]

#!/usr/bin/env bash
# check_deploy.sh — validates deploy/ without a container engine or a cluster, as TAP.
#
# What a broken deployment file would otherwise only show at `docker compose up` or
# `kubectl apply` time is caught here: the compose files (CPU and the GPU override) pass
# docker-compose's own schema and interpolation (v1 also reads every seccomp profile, from
# the current directory: hence the cd), every file they name exists, the seccomp profiles
# are well-formed Docker profiles over real syscall names that allow everything the
# in-process filters of common/src/seccomp.c allow and everything each role's own filter
# allows (as the built daemon prints it: realm-gateway/realm-worker --print-policy, and
# realm-runner --print-policy), all YAML passes yamllint with
# deploy/.yamllint, every Kubernetes object is well-formed and hardened, kustomize renders
# the base and the overlay (when kubectl is installed), every tenants file lists one runner
# endpoint per replica the compose file / StatefulSet runs (the gateway connects one replica
# per entry), every REALM_* variable set is one its daemon reads, the gateway's stop grace
# (compose stop_grace_period, k8s terminationGracePeriodSeconds with its preStop sleep) covers
# its drain timeout plus 5 s and its profile allows the signalfd4 its drain uses (with a
# self-test that mutated files are caught), and the example tenants files are accepted by the
# real realm-gateway, whose GET /health answers 200 and which exits 0 after SIGTERM.
#
# docker-compose and yamllint come from scripts/install-deps.sh: when missing, their checks
# FAIL (a skipped validation would pass CI with nothing validated). kubectl is optional.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=${REALM_SOURCE_ROOT:-$(cd "$here/../.." && pwd)}
build=${REALM_BUILD_ROOT:-}
deploy="$root/deploy"
py="$here/check_deploy.py"
n=0
failed=0

# run_check DESCRIPTION CMD...: one TAP line; the command's output becomes TAP comments.
run_check() {
  local desc=$1; shift
  local out rc
  n=$((n + 1))
  out=$("$@" 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then
    echo "ok $n - $desc"
  elif [ $rc -eq 77 ]; then
    echo "ok $n - $desc # SKIP ${out//$'\n'/; }"
    return 0
  else
    echo "not ok $n - $desc"
    failed=$((failed + 1))
  fi
  [ -n "$out" ] && [ $rc -ne 77 ] && printf '%s\n' "$out" | sed 's/^/# /'
  return 0
}

need_tool() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "$1 is not installed (scripts/install-deps.sh installs it: Debian package $2)"
  return 1
}

compose_config() { (cd "$deploy" && docker-compose "$@" config -q); }

run_check "docker-compose is installed" need_tool docker-compose docker-compose
run_check "yamllint is installed" need_tool yamllint yamllint
run_check "docker-compose config: docker-compose.yml" compose_config -f docker-compose.yml
run_check "docker-compose config: docker-compose.yml + docker-compose.gpu.yml" \
  compose_config -f docker-compose.yml -f docker-compose.gpu.yml
run_check "compose: referenced files exist, services hardened, one service per runner replica, tenants file lists each, REALM_* names real" \
  python3 "$py" compose "$deploy"
run_check "Dockerfiles: stages, non-root users, exec-form entrypoints, copied scripts exist" \
  python3 "$py" dockerfiles "$deploy"
for f in "$deploy"/seccomp/*.json; do
  run_check "seccomp JSON parses: ${f#"$root"/}" python3 -m json.tool "$f" /dev/null
done
run_check "seccomp profiles: format, known syscall names, superset of common/src/seccomp.c sets" \
  python3 "$py" seccomp "$deploy" "$root/common/src/seccomp.c"
for role in gateway worker runner; do
  run_check "seccomp/$role.json allows all that the $role's in-process filter allows" \
    python3 "$py" policy "$role" "$deploy" "$build"
done
run_check "yamllint deploy/ (deploy/.yamllint)" yamllint -s -f parsable -c "$deploy/.yamllint" "$deploy"
run_check "k8s manifests: hardening, probes, kustomize files, runner StatefulSets match the tenants Secret, REALM_* names real" \
  python3 "$py" k8s "$deploy"
run_check "kubectl kustomize deploy/k8s/base and overlays/worker-tcp" \
  python3 "$py" kustomize "$deploy"
run_check "drain rules catch a grace below a gateway's, runner's or worker's drain (compose, k8s) and a profile without signalfd4" \
  python3 "$py" selftest-drain "$deploy"
run_check "tenants files: key hashes only, accepted by realm-gateway, GET /health is 200" \
  python3 "$py" tenants "$deploy" "$build"

echo "1..$n"
[ $failed -eq 0 ]

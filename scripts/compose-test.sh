#!/usr/bin/env bash
# `docker compose up` for real, on a machine without a Docker engine: rootful Podman
# (Debian's podman 4.3 with runc, netavark and aardvark-dns) serves the Docker API on a
# private socket and Debian's docker-compose 1.29 drives it. The script
#   1. installs what is missing (root + apt),
#   2. builds the base images locally — nothing can be pulled here: a
#      `debootstrap --variant=minbase bookworm` rootfs plus the host's own nodejs files
#      (tagged node:20-bookworm-slim, what the Dockerfile starts FROM) and plus the
#      host's nats-server (the nats service's image),
#   3. runs docker-compose.yml as it is, except: the nats image, host ports remapped to
#      free loopback ports, and a build context that carries the host's CA bundle (npm
#      inside the build must trust what the host trusts),
#   4. waits for the trainer and checks its exit code and test accuracy, `dcnr status`
#      from inside the compose network (both supervisors up, one leading, three PNodes)
#      and the dashboard through its remapped port,
#   5. tears everything down — containers, networks, volumes, the Podman service and its
#      bridge — leaving nothing running (DCNR_COMPOSE_KEEP_IMAGES=1 keeps the images).
# About 4-6 minutes and 1.5 GiB of disk. CI runs it (.ci/run).
#   sudo bash scripts/compose-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
log() { printf '\ncompose-test: %s\n' "$*"; }
fail() { printf '\ncompose-test: FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (rootful Podman): sudo bash scripts/compose-test.sh"
MIN_ACCURACY=${DCNR_COMPOSE_MIN_ACCURACY:-0.90}

missing=()
for p in podman runc netavark aardvark-dns debootstrap docker-compose python3-yaml; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

work=$(mktemp -d /var/tmp/dcnr-compose.XXXXXX)
project="dcnrci$$"
service_pid=""
captured=0
logs=${DCNR_COMPOSE_LOG:-/tmp/dcnr-compose-test.log}
bridges_before=$(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | sort | tr '\n' ' ')

teardown() {
  local rc=$?
  log "teardown"
  if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
    if [ "$rc" -ne 0 ] && [ -f "$work/compose.yml" ]; then
      docker-compose -p "$project" -f "$work/compose.yml" logs --no-color >"$logs" 2>&1 || true
      echo "compose-test: every service's log: $logs"
    fi
    docker-compose -p "$project" -f "$work/compose.yml" down -v --remove-orphans >/dev/null 2>&1 || true
    kill "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
  fi
  # Whatever the API service left (a failed build's containers, the project's networks).
  podman ps -aq --filter "label=com.docker.compose.project=$project" | xargs -r podman rm -f >/dev/null 2>&1 || true
  podman network ls -q --filter "label=com.docker.compose.project=$project" | xargs -r podman network rm -f >/dev/null 2>&1 || true
  podman volume ls -q --filter "label=com.docker.compose.project=$project" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
  # Build containers a failed build left (buildah's, seen only with --external).
  [ "$captured" = 1 ] && comm -13 <(echo "$containers_before") <(podman ps -aq --external --no-trunc | sort) | xargs -r podman rm -f >/dev/null 2>&1 || true
  if [ "${DCNR_COMPOSE_KEEP_IMAGES:-0}" != 1 ]; then
    # Every image this run made (the base images, dcnr, a failed build's layers); none other.
    [ "$captured" = 1 ] && comm -13 <(echo "$images_before") <(podman images -aq --no-trunc | sort -u) | xargs -r podman rmi -f >/dev/null 2>&1 || true
  fi
  # conmon of `exec` sessions lingers (--exit-delay 300) after its container is gone.
  pgrep -f "conmon .* -n ${project}_" | xargs -r kill 2>/dev/null || true
  # Bridges netavark made for the project's networks and did not take down.
  for b in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}'); do
    case " $bridges_before " in *" $b "*) ;; *) case "$b" in podman*) ip link delete "$b" 2>/dev/null || true ;; esac ;; esac
  done
  local left
  left=$(podman ps -q | wc -l)
  [ "$left" -eq 0 ] || { echo "compose-test: $left containers still running after teardown" >&2; rc=1; }
  rm -rf "$work"
  exit $rc
}
trap teardown EXIT

# Podman as this machine lets it run: the hard nofile limit (it refuses Podman's default
# raise), runc (crun refuses this cgroup layout), netavark.
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
EOF
export CONTAINERS_CONF="$work/containers.conf"
export DOCKER_HOST="unix://$work/podman.sock"
podman system service --time=0 "$DOCKER_HOST" >"$work/podman-service.log" 2>&1 &
service_pid=$!
for _ in $(seq 100); do [ -S "$work/podman.sock" ] && break; sleep 0.1; done
images_before=$(podman images -aq --no-trunc | sort -u)
containers_before=$(podman ps -aq --external --no-trunc | sort)
captured=1
[ -S "$work/podman.sock" ] || fail "podman system service did not open $work/podman.sock: $(tail -3 "$work/podman-service.log")"

if ! podman image exists localhost/node:20-bookworm-slim || ! podman image exists localhost/dcnr-nats:ci; then
  mirror=$(grep -h -m1 -E '^URIs: ' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '{print $2}')
  mirror=${mirror:-http://deb.debian.org/debian}
  log "base images: debootstrap --variant=minbase bookworm from $mirror"
  rootfs="$work/rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || fail "debootstrap: $(tail -3 "$work/debootstrap.log")"
  cp /usr/sbin/nats-server "$rootfs/usr/sbin/nats-server"
  tar -C "$rootfs" -c . | podman import --change 'ENTRYPOINT ["/usr/sbin/nats-server"]' - localhost/dcnr-nats:ci >/dev/null
  rm "$rootfs/usr/sbin/nats-server"
  # The host's node as it is installed: the nodejs package's files (node, the headers
  # node-gyp needs offline) and the npm now in /usr/lib/node_modules/npm (it may have been
  # upgraded past the package's own).
  { dpkg -L nodejs | grep -v '^/usr/lib/node_modules/npm/' | while read -r f; do [ -f "$f" ] || [ -L "$f" ] && echo "${f#/}"; done
    echo usr/lib/node_modules/npm; } >"$work/nodejs.files"
  tar -C / -c -T "$work/nodejs.files" | tar -C "$rootfs" -x
  tar -C "$rootfs" -c . | podman import --change 'CMD ["node"]' - localhost/node:20-bookworm-slim >/dev/null
  rm -rf "$rootfs"
fi

log "build context and compose file"
ctx="$work/context"
mkdir -p "$ctx"
git ls-files -z --cached --others --exclude-standard | xargs -0 tar -c | tar -C "$ctx" -x
# A CA bundle for npm behind a TLS-inspecting proxy (the Dockerfile uses it when present).
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$ctx/build-ca.crt"
ports=$(python3 - "$repo/docker-compose.yml" "$work/compose.yml" "$ctx" <<'EOF'
import socket, sys, yaml
src, dst, ctx = sys.argv[1:]
spec = yaml.safe_load(open(src))
def free():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p
mapped = {}
for name, svc in spec['services'].items():
    if 'build' in svc: svc['build'] = ctx
    if name == 'nats': svc['image'] = 'localhost/dcnr-nats:ci'
    out = []
    for p in svc.get('ports', []):
        inner = str(p).split(':')[-1]
        port = free()
        mapped[f'{name}:{inner}'] = port
        out.append(f'127.0.0.1:{port}:{inner}')
    if out: svc['ports'] = out
yaml.safe_dump(spec, open(dst, 'w'), sort_keys=False)
print(' '.join(f'{k}={v}' for k, v in mapped.items()))
EOF
)
echo "host ports: $ports"
dashboard_port=$(tr ' ' '\n' <<<"$ports" | sed -n 's/^supervisor:7070=//p')
dc() { docker-compose -p "$project" -f "$work/compose.yml" "$@"; }

log "docker-compose up --build (the images are built from the Dockerfile)"
started=$(date +%s)
dc build >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; fail "image build"; }
echo "built in $(( $(date +%s) - started )) s"
dc up -d >"$work/up.log" 2>&1 || { cat "$work/up.log"; dc logs --no-color --tail 30 || true; fail "docker-compose up"; }

trainer=$(dc ps -q trainer)
[ -n "$trainer" ] || fail "no trainer container"
log "waiting for the trainer (600 steps)"
code=$(timeout 900 podman wait "$trainer") || { dc logs --no-color --tail 40 || true; fail "the trainer did not finish within 15 min"; }
dc logs --no-color trainer | tail -15
[ "$code" = 0 ] || { dc logs --no-color --tail 30 || true; fail "the trainer exited $code"; }
accuracy=$(dc logs --no-color trainer | sed -nE 's/.*test acc\. +([0-9]+(\.[0-9]+)?)%.*/\1/p' | tail -1)
[ -n "$accuracy" ] || fail "no test accuracy in the trainer's output"
python3 -c "import sys; sys.exit(0 if $accuracy / 100 >= $MIN_ACCURACY else 1)" || fail "test accuracy $accuracy% < $MIN_ACCURACY"

log "dcnr status from inside the compose network"
# Retried: the trainer has just exited, and netavark's cleanup of its container makes
# aardvark-dns (1.4, bookworm) reload — a lookup in that moment can fail (CI once saw
# `getaddrinfo ENOTFOUND nats` right here, with every service up and resolving).
status=""
for attempt in 1 2 3 4 5 6; do
  status=$(dc exec -T -e DCNR_CREDS=/auth/observer.creds supervisor node bin/dcnr.js status --nats nats://nats:4222 --json 2>"$work/status.err" | tail -1) || true
  case "$status" in "{"*) break ;; esac
  echo "attempt $attempt: no status yet: $(tail -1 "$work/status.err")"
  sleep 3
done
python3 - "$status" <<'EOF' || fail "dcnr status: $status"
import json, sys
s = json.loads(sys.argv[1])
alive = [p['id'] for p in s['pnodes'] if p['alive']]
vnodes = [v['id'] for v in s['vnodes'] if v['id'].startswith('mnist-mlp.')]
print(f"leader {s['supervisor'] and s['supervisor'].get('name')}, live PNodes {alive}, {len(vnodes)} VNodes of mnist-mlp")
assert s['supervisor'] and s['supervisor'].get('name') in ('supervisor', 'supervisor-2'), 'no leading supervisor'
assert sorted(alive) == ['pnode-1', 'pnode-2', 'pnode-3'], 'not all three PNodes alive'
assert vnodes, 'no VNode of mnist-mlp owned'
EOF
for s in supervisor supervisor-2 pnode-1 pnode-2 pnode-3 nats; do
  [ "$(podman inspect -f '{{.State.Running}}' "$(dc ps -q "$s")")" = true ] || fail "service $s is not running"
done
echo "all six long-running services up"

if [ -n "$dashboard_port" ]; then
  log "the dashboard through its remapped port"
  body=$(curl -fsS "http://127.0.0.1:$dashboard_port/api/status" || true)
  # The standby does not serve it; the leader may be the other one.
  [ -n "$body" ] || body=$(curl -fsS "http://127.0.0.1:$(tr ' ' '\n' <<<"$ports" | sed -n 's/^supervisor-2:7070=//p')/api/status" || true)
  [ -n "$body" ] || fail "no dashboard answered /api/status"
  echo "/api/status: $(printf '%s' "$body" | head -c 120)…"
fi

log "passed: trainer at ${accuracy}% inside compose, $(( $(date +%s) - started )) s from build to checks"

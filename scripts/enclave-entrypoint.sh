#!/usr/bin/env bash
# Entrypoint of the parent container: starts the parent-side proxy (vsock-stdout log listener,
# one egress forwarder per endpoint, ingress for the API and metrics ports) and only then
# `nitro-cli run-enclave`, so the enclave's first log line and first KMS call find a listener.
#
# Environment (defaults are the production values of the fixed contract):
#   PRODUCTION=true         refuse debug mode (FATAL, exit 1, nothing started)
#   ENCLAVE_DEBUG=1         run with --debug-mode --attach-console (attested PCRs are all zero)
#   EIF_PATH                /home/enclave.eif
#   ENCLAVE_CPUS            2
#   ENCLAVE_MEMORY_MIB      3524
#   ENCLAVE_CID             16
#   ENCLAVE_NAME            containment-chamber
#   EGRESS_ENDPOINTS        space-separated HOST:PORT list; endpoint i gets vsock port 8000+i
#   ALLOWLIST               vsock-proxy allowlist (default /etc/nitro_enclaves/vsock-proxy.yaml if present)
#   LOG_LISTEN              vsock://4294967295:7000
#   EGRESS_LISTEN_DIR       listen on unix://DIR/egress-I.sock instead of vsock (local runs, tests)
#   API_LISTEN / API_TARGET           tcp://0.0.0.0:9000 -> vsock://$ENCLAVE_CID:9000 ("off" to skip)
#   METRICS_LISTEN / METRICS_TARGET   tcp://0.0.0.0:3000 -> vsock://$ENCLAVE_CID:3000 ("off" to skip)
#   PROXY_METRICS           off, or HOST:PORT: the proxy's own metrics (containment_proxy_*),
#                           vsock-stdout on tcp://HOST:PORT, egress forwarder i on PORT+1+i
#   PROXY_BIN               containment-chamber-enclave-proxy
#   NITRO_CLI               nitro-cli
#   READY_TIMEOUT_S         10 (how long to wait for each listener before giving up)
set -euo pipefail

fatal() {
  echo "FATAL: $*" >&2
  exit 1
}

debug_requested() {
  case "${ENCLAVE_DEBUG:-}" in
    "" | 0 | false) return 1 ;;
    *) return 0 ;;
  esac
}

if [[ "${PRODUCTION:-false}" == "true" ]] && debug_requested; then
  fatal "ENCLAVE_DEBUG='${ENCLAVE_DEBUG}' is set while PRODUCTION=true. Debug mode zeroes the" \
    "attested PCRs (no key holder's policy releases a share) and attaches the enclave console." \
    "Unset ENCLAVE_DEBUG (helm: enclave.debug=false) and redeploy."
fi

EIF_PATH=${EIF_PATH:-/home/enclave.eif}
ENCLAVE_CPUS=${ENCLAVE_CPUS:-2}
ENCLAVE_MEMORY_MIB=${ENCLAVE_MEMORY_MIB:-3524}
ENCLAVE_CID=${ENCLAVE_CID:-16}
ENCLAVE_NAME=${ENCLAVE_NAME:-containment-chamber}
EGRESS_ENDPOINTS=${EGRESS_ENDPOINTS:-}
LOG_LISTEN=${LOG_LISTEN:-vsock://4294967295:7000}
API_LISTEN=${API_LISTEN:-tcp://0.0.0.0:9000}
API_TARGET=${API_TARGET:-vsock://${ENCLAVE_CID}:9000}
METRICS_LISTEN=${METRICS_LISTEN:-tcp://0.0.0.0:3000}
METRICS_TARGET=${METRICS_TARGET:-vsock://${ENCLAVE_CID}:3000}
PROXY_METRICS=${PROXY_METRICS:-off}
PROXY_BIN=${PROXY_BIN:-containment-chamber-enclave-proxy}
NITRO_CLI=${NITRO_CLI:-nitro-cli}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-10}
if [[ -z "${ALLOWLIST:-}" && -f /etc/nitro_enclaves/vsock-proxy.yaml ]]; then
  ALLOWLIST=/etc/nitro_enclaves/vsock-proxy.yaml
fi

ready_dir=$(mktemp -d)
pids=()
nitro_pid=""
enclave_started=0

stop_all() {
  local status=$1
  trap - TERM INT
  if [[ -n "${nitro_pid:-}" ]] && kill -0 "$nitro_pid" 2>/dev/null; then
    kill -TERM "$nitro_pid" 2>/dev/null || true # an attached console (debug mode)
  fi
  if [[ $enclave_started == 1 ]]; then
    "$NITRO_CLI" terminate-enclave --all >/dev/null 2>&1 || echo "WARN: nitro-cli terminate-enclave --all failed" >&2
  fi
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$ready_dir"
  exit "$status"
}
trap 'stop_all 0' TERM INT

# metrics_at OFFSET: the next proxy process serves its metrics OFFSET ports above
# PROXY_METRICS ("" for none).
metrics=()
metrics_at() {
  metrics=()
  if [[ "$PROXY_METRICS" != off && -n "$1" ]]; then
    metrics=(--metrics "tcp://${PROXY_METRICS%:*}:$((${PROXY_METRICS##*:} + $1))")
  fi
}

# start NAME ARGS...: start one proxy process and wait until its listener is bound.
start() {
  local name=$1
  shift
  local ready="$ready_dir/$name"
  "$PROXY_BIN" --ready-file "$ready" "${metrics[@]}" "$@" &
  pids+=("$!")
  local waited=0
  while [[ ! -e "$ready" ]]; do
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      echo "FATAL: $name did not start (see its error above)" >&2
      stop_all 1
    fi
    if ((waited >= READY_TIMEOUT_S * 10)); then
      echo "FATAL: $name did not bind its listener within ${READY_TIMEOUT_S}s" >&2
      stop_all 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

# 1. Logs first: nothing the enclave prints during boot is lost.
metrics_at 0
start vsock-stdout vsock-stdout --listen "$LOG_LISTEN"

# 2. Egress, one forwarder per endpoint, vsock port 8000+i.
i=0
for endpoint in $EGRESS_ENDPOINTS; do
  if [[ -n "${EGRESS_LISTEN_DIR:-}" ]]; then
    listen="unix://${EGRESS_LISTEN_DIR}/egress-${i}.sock"
  else
    listen="vsock://4294967295:$((8000 + i))"
  fi
  args=(egress --name "${endpoint%%:*}" --listen "$listen" --target "tcp://${endpoint}")
  if [[ -n "${ALLOWLIST:-}" ]]; then
    args+=(--allowlist "$ALLOWLIST")
  fi
  metrics_at $((1 + i))
  start "egress-$i" "${args[@]}"
  i=$((i + 1))
done

# 3. Ingress for the API and metrics ports. At its connection cap the API's ingress still
#    passes the kubelet's probes (GET /upcheck, /healthcheck) through reserved slots.
metrics_at ""
if [[ "$API_LISTEN" != off ]]; then
  start ingress-api ingress --name api --listen "$API_LISTEN" --target "$API_TARGET" \
    --probe-path /upcheck --probe-path /healthcheck
fi
if [[ "$METRICS_LISTEN" != off ]]; then
  start ingress-metrics ingress --name metrics --listen "$METRICS_LISTEN" --target "$METRICS_TARGET"
fi

# 4. The enclave.
run_args=(run-enclave --eif-path "$EIF_PATH" --cpu-count "$ENCLAVE_CPUS"
  --memory "$ENCLAVE_MEMORY_MIB" --enclave-cid "$ENCLAVE_CID" --enclave-name "$ENCLAVE_NAME")
if [[ "${ENCLAVE_DEBUG:-}" == "1" ]]; then
  run_args+=(--debug-mode --attach-console)
fi
echo "starting enclave: $NITRO_CLI ${run_args[*]}"
enclave_started=1
"$NITRO_CLI" "${run_args[@]}" &
nitro_pid=$!
set +e
wait "$nitro_pid"
status=$?
set -e
if [[ $status -ne 0 ]]; then
  # 143/130: we were signalled while an attached console ran; the trap handles that.
  echo "ERROR: nitro-cli run-enclave exited with status $status" >&2
  enclave_started=0
  stop_all "$status"
fi

# 5. Stay up while every proxy process runs; if one dies, stop so the pod restarts visibly.
set +e
wait -n "${pids[@]}"
status=$?
set -e
echo "ERROR: a proxy process exited (status $status); stopping" >&2
stop_all 1

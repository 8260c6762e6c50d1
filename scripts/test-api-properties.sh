#!/usr/bin/env bash
# Property-based API test from the server's own OpenAPI document (schemathesis, pinned in
# scripts/setup-mobile.sh): the real yibiao-server on loopback with a temporary data dir
# and the Baru schema, one token of each kind (admin; a department; a phone enrolled
# through POST /v1/enrol), and for each of them (and none) schemathesis generates
# requests for every documented operation and checks:
#   not_a_server_error            no 5xx, ever
#   response_schema_conformance   2xx bodies match the schemas the document declares
#   error_envelope                every non-2xx is {"error": {"code", "message"}}
#                                 (scripts/api-properties/hooks.py)
# Reuses the binary built by scripts/test.sh (SERVER_BIN to override).
#   EXAMPLES=N   examples per operation, phase and token (default 40: about 1,200 requests
#                per token, ~80 s for all four on 2 cores; keep the CI cost under ~3 min)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
EXAMPLES="${EXAMPLES:-40}"
SERVER_BIN="${SERVER_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/yibiao-server}"

tools="$(bash scripts/setup-mobile.sh)"
eval "$tools"
ST="$(dirname "$PYTHON")/schemathesis"
[ -x "$ST" ] || { echo "schemathesis missing at $ST (scripts/setup-mobile.sh installs it)" >&2; exit 1; }
[ -x "$SERVER_BIN" ] || cargo build --quiet --locked -p yibiao-server
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

DATA="$WORK/data"
# Rate limits off: schemathesis is one client sending hundreds of requests a minute.
cat >"$WORK/server.toml" <<TOML
rate_per_minute = 0
TOML
srv() { "$SERVER_BIN" --config "$WORK/server.toml" --data-dir "$DATA" "$@"; }

srv serve --listen 127.0.0.1:0 --schema examples/schema/baru.toml >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$WORK/server.out" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
BASE="$(sed -n 's/^listening on //p' "$WORK/server.out")"
[ -n "$BASE" ] || { echo "the server did not start" >&2; cat "$WORK/server.log" >&2; exit 1; }

ADMIN="$(tr -d '\n' <"$DATA/admin-token")"
DEPT="$(srv department token public_services | sed -n 's/^token (shown once): //p')"
srv cadre add --id amu --name 阿木 --village tujiang >/dev/null
CODE="$(srv cadre code amu | sed -n 's/^code: //p')"
DEVICE="$("$PYTHON" - "$BASE" "$CODE" <<'PY'
import json, sys, urllib.request
base, code = sys.argv[1], sys.argv[2]
req = urllib.request.Request(base + "/v1/enrol", method="POST",
    data=json.dumps({"code": code, "device": "dev-api-properties"}).encode(),
    headers={"content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["token"])
PY
)"
[ -n "$ADMIN" ] && [ -n "$DEPT" ] && [ -n "$DEVICE" ] || { echo "could not make the tokens" >&2; exit 1; }
curl -fsS "$BASE/openapi.json" -o "$WORK/openapi.json"

# schemathesis keeps a cache in the working directory: run it in the temporary one.
cd "$WORK"
failed=0
run() { # kind, extra schemathesis args...
  local kind="$1"; shift
  printf '\n--- schemathesis as %s: %s examples per operation\n' "$kind" "$EXAMPLES"
  if ! SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$ROOT/scripts/api-properties" "$ST" run "$WORK/openapi.json" \
    --url "$BASE" --checks not_a_server_error,response_schema_conformance,error_envelope \
    --phases examples,coverage,fuzzing --max-examples "$EXAMPLES" --seed 11 --workers 1 \
    --generation-database none --no-color --suppress-health-check all \
    --request-timeout 30 --report junit --report-junit-path "$WORK/$kind.xml" "$@" >"$WORK/$kind.log" 2>&1; then
    failed=1
    cat "$WORK/$kind.log"
  else
    sed -n '/SUMMARY/,$p' "$WORK/$kind.log"
  fi
  local ops cases
  ops="$(grep -c '<testcase' "$WORK/$kind.xml" || true)"
  cases="$(grep -oE '[0-9]+ generated' "$WORK/$kind.log" | tail -1 || true)"
  echo "api properties ($kind): $ops operations, ${cases:-? generated} test cases"
}
run none
run admin -H "Authorization: Bearer $ADMIN"
run department -H "Authorization: Bearer $DEPT"
run device -H "Authorization: Bearer $DEVICE"

if grep -qE 'panicked|thread .* panicked' "$WORK/server.log"; then
  echo "the server panicked:" >&2; grep -E -A5 'panicked' "$WORK/server.log" >&2; failed=1
fi
kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server died during the run" >&2; failed=1; }
[ "$failed" = 0 ] || { echo "api properties: FAILED (server log: see above)" >&2; exit 1; }
echo "api properties: passed"

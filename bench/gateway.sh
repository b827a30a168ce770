#!/usr/bin/env bash
# Gateway benchmark: wrk (a second process) against a trivial upstream on loopback, in one
# run: (a) the upstream directly, (b) Tollgate proxying a public route, (c) Tollgate
# proxying a required route with a valid session cookie, (d) Tollgate proxying a route with
# `mfa = true` (step-up) with the cookie of a session that passed a second factor,
# (e) a protected resource (`resource = true`) with a service token bound to it (the
# audience check), (f) a plain required route admitting clients, with the same service's
# unbound token; then the token endpoint: (g) client-credentials grants/s and (h)
# token-exchange grants/s (RFC 8693, with its audit entry). Prints requests/s and p50/p99
# latency for each, and the ratios the issues set goals for:
#   throughput (c)/(b) >= 0.9, p99 added by authentication (c)-(b) < 0.5 ms,
#   (d)/(c): no measurable difference (the step-up decision reads the token only),
#   (e)/(f): no measurable difference (the audience check is a string comparison).
# The upstream is nginx answering `return 200` (installed with wrk from Debian's
# packages when missing). Usage: bench/gateway.sh [duration per phase, default 6s] [connections, 32]
# TOLLGATE_BIN=path measures that binary instead of building target/release/tollgate (to
# compare a change against the binary from before it, in the same conditions).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-6s}
CONNECTIONS=${2:-32}

need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if ! need wrk || ! need nginx; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ -z "${TOLLGATE_BIN:-}" ]; then
  cargo build --release --locked -q
  TOLLGATE_BIN=target/release/tollgate
fi
WORK=$(mktemp -d)
cleanup() {
  [ -n "${TG_PID:-}" ] && kill "$TG_PID" 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP_PORT=$(free_port)
TG_PORT=$(free_port)

cat > "$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/body; proxy_temp_path $WORK/proxy;
  fastcgi_temp_path $WORK/fastcgi; uwsgi_temp_path $WORK/uwsgi; scgi_temp_path $WORK/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP_PORT;
    location / { return 200 "ok\n"; }
  }
}
EOF
# Tollgate gets core 0 to itself; nginx and wrk share the other. Without pinning, three
# busy processes on two cores make every figure swing by ±10% from run to run.
PIN_TG=(taskset -c 0)
PIN_LOAD=(taskset -c 1)
if [ "$(nproc)" -lt 2 ] || ! command -v taskset >/dev/null; then PIN_TG=(); PIN_LOAD=(); fi
"${PIN_LOAD[@]}" "$NGINX" -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf"

BASE="http://127.0.0.1:$TG_PORT"
cat > "$WORK/tollgate.toml" <<EOF
[limits]
enabled = false
[roles.user]
scopes = ["profile", "svc:call"]
[[oauth.token_exchange]]
client = "bench-svc"
audiences = ["$BASE/res"]
scopes = ["svc:call"]
[[route]]
path = "/res/*"
upstream = "http://127.0.0.1:$UP_PORT"
resource = true
scopes = ["svc:call"]
[[route]]
path = "/svc/*"
upstream = "http://127.0.0.1:$UP_PORT"
clients = ["*"]
scopes = ["svc:call"]
[[route]]
path = "/pub/*"
upstream = "http://127.0.0.1:$UP_PORT"
auth = "public"
[[route]]
path = "/req/*"
upstream = "http://127.0.0.1:$UP_PORT"
[[route]]
path = "/mfa/*"
upstream = "http://127.0.0.1:$UP_PORT"
mfa = true
EOF
TOLLGATE_CONFIG="$WORK/tollgate.toml" TOLLGATE_DATA_DIR="$WORK/data" TOLLGATE_LOG=warn \
  TOLLGATE_LISTEN="127.0.0.1:$TG_PORT" "${PIN_TG[@]}" "$TOLLGATE_BIN" serve 2>"$WORK/tollgate.log" &
TG_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$TG_PORT/healthz" >/dev/null && break; sleep 0.1; done

curl -sf -H 'content-type: application/json' -d '{"email":"bench@example.com","password":"bench password 123"}' "$BASE/auth/register" >/dev/null
COOKIE=$(curl -sf -D - -o /dev/null -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"bench password 123"}' "$BASE/auth/login" \
  | awk -F'[: ;]+' 'tolower($1)=="set-cookie" {printf "%s%s", sep, $2; sep="; "}')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$BASE/req/x")" = 200 ] || { echo "cookie request refused" >&2; exit 1; }
# A second account with an authenticator app, signed in with password and a recovery code.
MFA_USER='{"email":"bench-mfa@example.com","password":"bench password 123"}'
curl -sf -H 'content-type: application/json' -d "$MFA_USER" "$BASE/auth/register" >/dev/null
MFA_TOKEN=$(curl -sf -H 'content-type: application/json' -d "$MFA_USER" "$BASE/auth/login?mode=token" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
SECRET=$(curl -sf -X POST -H "Authorization: Bearer $MFA_TOKEN" -H 'content-type: application/json' -d '{}' \
  "$BASE/auth/mfa/totp" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
CODE=$(python3 - "$SECRET" <<'PY'
import base64, hashlib, hmac, struct, sys, time
key = base64.b32decode(sys.argv[1] + "=" * (-len(sys.argv[1]) % 8))
mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
o = mac[-1] & 15
print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000))
PY
)
RECOVERY=$(curl -sf -H "Authorization: Bearer $MFA_TOKEN" -H 'content-type: application/json' \
  -d "{\"code\":\"$CODE\"}" "$BASE/auth/mfa/totp/confirm" | python3 -c 'import json,sys; print(json.load(sys.stdin)["recovery_codes"][0])')
MFA_COOKIE=$(curl -sf -D - -o /dev/null -H 'content-type: application/json' \
  -d "{\"email\":\"bench-mfa@example.com\",\"password\":\"bench password 123\",\"totp\":\"$RECOVERY\"}" "$BASE/auth/login" \
  | awk -F'[: ;]+' 'tolower($1)=="set-cookie" {printf "%s%s", sep, $2; sep="; "}')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $MFA_COOKIE" "$BASE/mfa/x")" = 200 ] || { echo "second-factor request refused" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$BASE/mfa/x")" = 401 ] || { echo "a password-only session passed the mfa route" >&2; exit 1; }

# A service allowed to exchange tokens; its bound and unbound client-credentials tokens.
SVC=$(TOLLGATE_CONFIG="$WORK/tollgate.toml" TOLLGATE_DATA_DIR="$WORK/data" TOLLGATE_LISTEN="127.0.0.1:$TG_PORT" "$TOLLGATE_BIN" client add "Bench service" \
  --id bench-svc --scope svc:call --grant client_credentials --grant urn:ietf:params:oauth:grant-type:token-exchange)
SVC_SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$SVC")
SVC_BASIC="Basic $(printf 'bench-svc:%s' "$SVC_SECRET" | base64 -w0)"
svc_token() { curl -sf -H "Authorization: $SVC_BASIC" -d grant_type=client_credentials "$@" "$BASE/oauth2/token" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'; }
BOUND=$(svc_token -d "resource=$BASE/res")
UNBOUND=$(svc_token)
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BOUND" "$BASE/res/x")" = 200 ] || { echo "bound token refused at its resource" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BOUND" "$BASE/svc/x")" = 401 ] || { echo "bound token passed a plain route" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $UNBOUND" "$BASE/svc/x")" = 200 ] || { echo "service token refused" >&2; exit 1; }
USER_TOKEN=$(curl -sf -H 'content-type: application/json' -d '{"email":"bench@example.com","password":"bench password 123"}' \
  "$BASE/auth/login?mode=token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
grant_script() { # file body
  printf 'wrk.method = "POST"\nwrk.body = "%s"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\nwrk.headers["Authorization"] = "%s"\n' "$2" "$SVC_BASIC" >"$1"
}
grant_script "$WORK/cc.lua" "grant_type=client_credentials"
grant_script "$WORK/exchange.lua" "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=$USER_TOKEN&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&resource=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$BASE/res")"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $SVC_BASIC" --data-binary "$(awk -F'"' '/wrk.body/ {print $2}' "$WORK/exchange.lua")" "$BASE/oauth2/token")" = 200 ] || { echo "token exchange refused" >&2; exit 1; }

run() { # label url [header]
  local out
  if [ -n "${3:-}" ]; then
    out=$("${PIN_LOAD[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -H "$3" "$2")
  elif [ -n "${SCRIPT:-}" ]; then
    out=$("${PIN_LOAD[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$SCRIPT" "$2")
  else
    out=$("${PIN_LOAD[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$2")
  fi
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  [ -z "$non2xx" ] || { echo "$1: $non2xx non-2xx responses" >&2; exit 1; }
  printf '%s %s %s %s\n' "$1" "$rps" "$p50" "$p99"
}
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); print v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v } else { sub(/s$/,"",v); print v*1000 } }'; }

# Warm up every path (connection pools, token cache), then measure. Throughput phases
# alternate (b, c, b, c) so drift on a shared machine hits both alike; rates are averaged
# and latencies taken from the pair's worse run. A light-load pass (4 connections) then
# measures latency without queueing, which dominates p99 at 32 connections on 2 cores.
wrk -t1 -c"$CONNECTIONS" -d2s "$BASE/pub/x" >/dev/null
wrk -t1 -c"$CONNECTIONS" -d2s -H "Cookie: $COOKIE" "$BASE/req/x" >/dev/null
wrk -t1 -c"$CONNECTIONS" -d2s -H "Cookie: $MFA_COOKIE" "$BASE/mfa/x" >/dev/null
wrk -t1 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $BOUND" "$BASE/res/x" >/dev/null
wrk -t1 -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $UNBOUND" "$BASE/svc/x" >/dev/null
A=$(run upstream "http://127.0.0.1:$UP_PORT/x")
B1=$(run public "$BASE/pub/x")
C1=$(run required "$BASE/req/x" "Cookie: $COOKIE")
D1=$(run mfa "$BASE/mfa/x" "Cookie: $MFA_COOKIE")
B2=$(run public "$BASE/pub/x")
C2=$(run required "$BASE/req/x" "Cookie: $COOKIE")
D2=$(run mfa "$BASE/mfa/x" "Cookie: $MFA_COOKIE")
E1=$(run resource "$BASE/res/x" "Authorization: Bearer $BOUND")
F1=$(run plain "$BASE/svc/x" "Authorization: Bearer $UNBOUND")
E2=$(run resource "$BASE/res/x" "Authorization: Bearer $BOUND")
F2=$(run plain "$BASE/svc/x" "Authorization: Bearer $UNBOUND")
# Grants are heavier (a signature each, an audit write per exchange): 8 connections.
G=$(CONNECTIONS=8 SCRIPT="$WORK/cc.lua" run client_credentials "$BASE/oauth2/token")
H=$(CONNECTIONS=8 SCRIPT="$WORK/exchange.lua" run token_exchange "$BASE/oauth2/token")
CONNECTIONS=4
LB=$(run public "$BASE/pub/x")
LC=$(run required "$BASE/req/x" "Cookie: $COOKIE")
LD=$(run mfa "$BASE/mfa/x" "Cookie: $MFA_COOKIE")

merge() { # two rows of one case → label, mean rps, worse p50, worse p99 (in ms)
  read -r l r1 a1 b1 <<<"$1"; read -r _ r2 a2 b2 <<<"$2"
  awk -v l="$l" -v r1="$r1" -v r2="$r2" -v a1="$(to_ms "$a1")" -v a2="$(to_ms "$a2")" \
      -v b1="$(to_ms "$b1")" -v b2="$(to_ms "$b2")" \
      'BEGIN { printf "%s %.0f %.3fms %.3fms\n", l, (r1+r2)/2, (a1>a2?a1:a2), (b1>b2?b1:b2) }'
}
B=$(merge "$B1" "$B2")
C=$(merge "$C1" "$C2")
D=$(merge "$D1" "$D2")
E=$(merge "$E1" "$E2")
F=$(merge "$F1" "$F2")

echo "wrk -t1, $(nproc) cores (Tollgate pinned to core 0, nginx and wrk to core 1); upstream: nginx return 200"
printf '%-40s %12s %10s %10s\n' case "requests/s" p50 p99
row() { read -r _ rps p50 p99 <<<"$2"; printf '%-40s %12s %10s %10s\n' "$1" "$rps" "$p50" "$p99"; }
row "(a) upstream directly, 32 conn" "$A"
row "(b) Tollgate, public route, 32 conn" "$B"
row "(c) Tollgate, required + cookie, 32 conn" "$C"
row "(d) Tollgate, mfa route + cookie, 32 conn" "$D"
row "(e) resource + bound bearer, 32 conn" "$E"
row "(f) plain + unbound bearer, 32 conn" "$F"
row "(g) client_credentials grants, 8 conn" "$G"
row "(h) token_exchange grants, 8 conn" "$H"
row "(b) public, 4 conn" "$LB"
row "(c) required + cookie, 4 conn" "$LC"
row "(d) mfa route + cookie, 4 conn" "$LD"
read -r _ rps_b _ p99_b <<<"$B"
read -r _ rps_c _ p99_c <<<"$C"
read -r _ rps_d _ p99_d <<<"$D"
read -r _ rps_e _ p99_e <<<"$E"
read -r _ rps_f _ p99_f <<<"$F"
read -r _ rps_g _ _ <<<"$G"
read -r _ rps_h _ _ <<<"$H"
read -r _ _ lp50_b lp99_b <<<"$LB"
read -r _ _ lp50_c lp99_c <<<"$LC"
read -r _ _ lp50_d lp99_d <<<"$LD"
awk -v b="$rps_b" -v c="$rps_c" -v d="$rps_d" -v pb="$(to_ms "$p99_b")" -v pc="$(to_ms "$p99_c")" \
    -v pd="$(to_ms "$p99_d")" -v lb="$(to_ms "$lp99_b")" -v lc="$(to_ms "$lp99_c")" \
    -v ld="$(to_ms "$lp99_d")" -v mb="$(to_ms "$lp50_b")" -v mc="$(to_ms "$lp50_c")" \
    -v md="$(to_ms "$lp50_d")" -v e="$rps_e" -v f="$rps_f" -v pe="$(to_ms "$p99_e")" \
    -v pf="$(to_ms "$p99_f")" -v g="$rps_g" -v h="$rps_h" 'BEGIN {
  printf "throughput (c)/(b) = %.3f   (goal >= 0.9)\n", c/b
  printf "p99 added by authentication (c)-(b): %.3f ms at 32 connections, %.3f ms at 4   (goal < 0.5 ms)\n", pc-pb, lc-lb
  printf "p50 added by authentication at 4 connections: %.3f ms\n", mc-mb
  printf "step-up route: (d)/(b) = %.3f, (d)/(c) = %.3f   (goal: no measurable difference)\n", d/b, d/c
  printf "p50/p99 added by the step-up check (d)-(c) at 4 connections: %.3f / %.3f ms\n", md-mc, ld-lc
  printf "resource route with audience check: (e)/(f) = %.3f, p99 (e)-(f) = %.3f ms   (goal: no measurable difference)\n", e/f, pe-pf
  printf "token exchange vs client credentials: (h)/(g) = %.3f grants/s\n", h/g
}'

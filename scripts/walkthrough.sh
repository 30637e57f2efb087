#!/usr/bin/env bash
# Runs the README's curl walk-through ("Try the API with curl" and "Audit and data protection")
# step by step against the real `sealpost serve --sim-clock`, and checks every answer with jq.
# The variable names and curl command lines are the README's, so the two read side by side;
# the webhook listener is the README's own `hook.py`, cut out of README.md, and the image is
# docs/walkthrough/bike.png. Any answer that differs from the README's ends the run with the
# step's name, what was expected and the answer.
#
#   scripts/walkthrough.sh
#
# Environment:
#   SEALPOST             the command that runs the binary (default: `cargo run -q --` in this repo)
#   PORT                 the server's port (default 8080)
#   HOOK_PORT            the webhook listener's port (default 9000)
#   HOOK_TLS_PORT        the same listener's port over https (default 9443)
#   WALKTHROUGH_RESTART  1: stop the server (SIGTERM, it must exit 0 within 10 s) and start it
#                        again on the same data between EVERY step; otherwise it is restarted
#                        once, after the webhook subscription
#   WALKTHROUGH_KEEP     1: keep the work directory (server.log, hook.log, sealpost-data)
#   WALKTHROUGH_WAIT     seconds to wait for an asynchronous effect (webhook, delivery; 30)
#   WALKTHROUGH_START_SECONDS  seconds to wait for `sealpost serving on` at each start (60)
#
# Needs bash, curl, jq, python3 (the listener) and cmp. The suite runs it with
# WALKTHROUGH_RESTART=1 (tests/walkthrough.rs). It prints step names only: the tokens never,
# an answer only when it is not what the README says.
#
# The README's commands are kept as written, unquoted expansions included (SC2086, SC2046);
# jq programs are single-quoted on purpose (SC2016).
# shellcheck disable=SC2016,SC2046,SC2086
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PORT:-8080}
HOOK_PORT=${HOOK_PORT:-9000}
HOOK_TLS_PORT=${HOOK_TLS_PORT:-9443}
# Flags every start of the server gets from the step that adds them on.
SERVE_FLAGS=()
RESTART_EVERY_STEP=${WALKTHROUGH_RESTART:-0}
WAIT_SECONDS=${WALKTHROUGH_WAIT:-30}
if [[ -n ${SEALPOST:-} ]]; then
  if [[ -x $SEALPOST ]]; then
    SEALPOST_CMD=("$(cd "$(dirname "$SEALPOST")" && pwd)/$(basename "$SEALPOST")")
  else
    read -r -a SEALPOST_CMD <<<"$SEALPOST"
  fi
else
  SEALPOST_CMD=(cargo run -q --manifest-path "$ROOT/Cargo.toml" --bin sealpost --)
fi
for tool in curl jq python3 cmp base64 sha256sum openssl; do
  command -v "$tool" >/dev/null || { echo "walkthrough: $tool is needed" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sealpost-walkthrough.XXXXXX")
SERVER_PID=
HOOK_PID=
TLS_HOOK_PID=
STEP_NO=0
STEP_NAME="set-up"
ANSWER=
STATUS=

cleanup() {
  local rc=$?
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  for pid in $HOOK_PID $TLS_HOOK_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${WALKTHROUGH_KEEP:-0} == 1 ]]; then
    echo "walkthrough: work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers -----------------------------------------------------------------------------------

fail() {
  {
    echo "FAILED at step $STEP_NO \"$STEP_NAME\": $*"
    [[ -n $STATUS ]] && echo "  HTTP status: $STATUS"
    [[ -n $ANSWER ]] && echo "  answer: $ANSWER"
    if [[ -f $WORK/server.log ]]; then
      echo "  server log (tail):"
      grep -v 'embedded default' "$WORK/server.log" | tail -n 20 | sed 's/^/    /'
    fi
    if [[ -f $WORK/hook.log ]]; then
      echo "  hook.log (tail):"
      tail -n 10 "$WORK/hook.log" | cut -c1-400 | sed 's/^/    /'
    fi
  } >&2
  exit 1
}

# A step of the README. With WALKTHROUGH_RESTART=1 the server is restarted before each one.
step() {
  if [[ $RESTART_EVERY_STEP == 1 && $STEP_NO -gt 0 ]]; then
    restart_server
  fi
  STEP_NO=$((STEP_NO + 1))
  STEP_NAME=$1
  ANSWER=
  STATUS=
  printf '[%2d] %s\n' "$STEP_NO" "$STEP_NAME"
}

# Runs a README curl command as written; its body lands in $ANSWER, its status in $STATUS.
answer() {
  local out
  out=$("$@" -w '\n%{http_code}') || fail "curl failed (exit $?)"
  STATUS=${out##*$'\n'}
  ANSWER=${out%$'\n'*}
}

# check [jq options…] 'expression': the last answer must make the expression true.
check() {
  local expr=${*: -1}
  jq -e "${@:1:$#-1}" "$expr" >/dev/null 2>&1 <<<"$ANSWER" || fail "expected $expr"
}

status_is() {
  [[ $STATUS == "$1" ]] || fail "expected HTTP $1"
}

# eventually 'what' command…: retries the command (quietly) until it succeeds, for up to
# $WAIT_SECONDS; webhooks, receipts and deliveries are asynchronous.
eventually() {
  local what=$1 deadline=$((SECONDS + WAIT_SECONDS))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || fail "timed out after ${WAIT_SECONDS}s waiting for $what"
    sleep 0.5
  done
}

# The notifications the listener printed as "signed …", as one JSON array.
notifications() {
  grep '^signed ' "$WORK/hook.log" | sed 's/^signed //' | jq -s -c . 2>/dev/null || echo '[]'
}

# hook_has [jq options…] 'expression over the array of notifications'
hook_has() {
  local expr=${*: -1}
  if grep -q 'BAD SIGNATURE' "$WORK/hook.log"; then
    ANSWER=$(grep -m1 'BAD SIGNATURE' "$WORK/hook.log" | cut -c1-400)
    fail "the listener got a notification whose signature does not verify"
  fi
  notifications | jq -e "${@:1:$#-1}" "$expr" >/dev/null 2>&1
}

# Every `value` of every notification, one array (what the business's code looks at).
VALUES='[.[].entry[].changes[] | select(.field == "messages") | .value]'

# The device's inbox must satisfy an expression (it polls: delivery is asynchronous).
inbox_has() {
  answer curl -s "$BASE/sim/v1/devices/4915112345678/inbox"
  [[ $STATUS == 200 ]] && jq -e "${@:1:$#-1}" "${*: -1}" >/dev/null 2>&1 <<<"$ANSWER"
}

start_server() {
  : >"$WORK/server.out"
  "${SEALPOST_CMD[@]}" serve --sim-clock --listen "127.0.0.1:$PORT" "${SERVE_FLAGS[@]}" \
    >>"$WORK/server.out" 2>>"$WORK/server.log" &
  SERVER_PID=$!
  local deadline=$((SECONDS + ${WALKTHROUGH_START_SECONDS:-60}))
  until grep -q 'sealpost serving on' "$WORK/server.out"; do
    kill -0 "$SERVER_PID" 2>/dev/null || { SERVER_PID=; fail "sealpost serve exited at start"; }
    ((SECONDS < deadline)) || fail "sealpost serve did not print 'sealpost serving on' in time"
    sleep 0.1
  done
}

stop_server() {
  kill -TERM "$SERVER_PID"
  local deadline=$((SECONDS + 10)) rc=0
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      kill -KILL "$SERVER_PID" 2>/dev/null || true
      wait "$SERVER_PID" 2>/dev/null || true
      SERVER_PID=
      fail "sealpost serve did not exit within 10 s of SIGTERM"
    fi
    sleep 0.1
  done
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=
  ((rc == 0)) || fail "sealpost serve exited with status $rc on SIGTERM"
}

restart_server() {
  stop_server
  start_server
}

# --- set-up ------------------------------------------------------------------------------------

cd "$WORK"
cp "$ROOT/docs/walkthrough/bike.png" bike.png
# The README's listener, as the README prints it, on $HOOK_PORT.
awk '/^```python$/ { inside = 1; next } inside && /^```$/ { exit } inside' "$ROOT/README.md" >hook.py
grep -q 'HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "9000"))), Hook)' hook.py \
  || fail "README.md: no hook.py listening on \$PORT (default 9000)"
# Build (when run through cargo) before the start-up timeout counts.
"${SEALPOST_CMD[@]}" --help >/dev/null

echo "walkthrough: work directory $WORK, server on port $PORT, listener on $HOOK_PORT" \
  "($([[ $RESTART_EVERY_STEP == 1 ]] && echo 'restarting between every step' || echo 'one restart'))"

# --- Try the API with curl ---------------------------------------------------------------------

step "cargo run -- serve --sim-clock"
start_server
[[ -f sealpost-data/bootstrap.json ]] || fail "no sealpost-data/bootstrap.json after the first start"
[[ $(stat -c %a sealpost-data/bootstrap.json) == 600 ]] || fail "bootstrap.json is not mode 0600"

B=sealpost-data/bootstrap.json
BASE=$(jq -r .base_url $B)            # the address of the first start
TOKEN=$(jq -r .access_token $B)       # the business's system user
PHONE_NUMBER_ID=$(jq -r .phone_number_id $B)
APP_ID=$(jq -r .app_id $B)
WABA_ID=$(jq -r .waba_id $B)
[[ $BASE == "http://127.0.0.1:$PORT" ]] || fail "base_url is $BASE"
for v in TOKEN PHONE_NUMBER_ID APP_ID WABA_ID; do
  [[ -n ${!v} && ${!v} != null ]] || fail "bootstrap.json has no value for $v"
done

step "a consumer writes first"
answer curl -s -X POST $BASE/sim/v1/devices/4915112345678/messages \
  -H 'content-type: application/json' \
  -d '{"to":"15550783881","type":"text","text":{"body":"hi"}}'
status_is 200
check '.id | startswith("dev.")'
DEV_ID=$(jq -r .id <<<"$ANSWER")

step "the business answers"
# The "hi" opens the window once the pipeline has received and recorded it, a moment after the
# device's send answered; until then the answer is refused with 131047, as a reader typing the
# next command would not notice. So the script tries again while it is 131047.
business_answers() {
  answer curl -s -X POST "$BASE/v21.0/$PHONE_NUMBER_ID/messages" \
    -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"messaging_product":"whatsapp","recipient_type":"individual","to":"4915112345678","type":"text","text":{"body":"Hello! How can we help?"}}'
  [[ $STATUS != 400 ]] || ! jq -e '.error.code == 131047' >/dev/null 2>&1 <<<"$ANSWER"
}
eventually "the \"hi\" to open the service window" business_answers
status_is 200
check '.messaging_product == "whatsapp"'
check '.contacts == [{"input":"4915112345678","wa_id":"4915112345678"}]'
check '.messages[0].id | startswith("wamid.")'
WAMID=$(jq -r '.messages[0].id' <<<"$ANSWER")

step "the device decrypts it"
eventually "the answer in the device's inbox" inbox_has --arg id "$WAMID" \
  '.messages | any(.id == $id and .from == "15550783881" and .content == {"type":"text","text":{"body":"Hello! How can we help?"}})'
check '.read_by_business == []'

step "without the token: 401, code 190"
answer curl -s -X POST "$BASE/v21.0/$PHONE_NUMBER_ID/messages" \
  -H 'content-type: application/json' \
  -d '{"messaging_product":"whatsapp","to":"4915112345678","type":"text","text":{"body":"no token"}}'
status_is 401
check '.error.code == 190 and .error.type == "OAuthException"'

step "another business's number (or none): 403, code 200"
answer curl -s -X POST "$BASE/v21.0/100000000000001/messages" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"messaging_product":"whatsapp","to":"4915112345678","type":"text","text":{"body":"not mine"}}'
status_is 403
check '.error.code == 200'

step "the listener: APP_SECRET=… python3 hook.py"
APP_SECRET=$(jq -r .app_secret sealpost-data/bootstrap.json) PORT=$HOOK_PORT python3 hook.py > hook.log &
HOOK_PID=$!
listener_up() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HOOK_PORT/hook?hub.verify_token=wrong&hub.challenge=1") == 403 ]]
}
eventually "hook.py to listen on $HOOK_PORT" listener_up

step "subscribe the app"
answer curl -s -X POST "$BASE/v21.0/$APP_ID/subscriptions" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"object":"whatsapp_business_account","callback_url":"http://127.0.0.1:'"$HOOK_PORT"'/hook","verify_token":"my-verify-token","fields":["messages"]}'
status_is 200
check '. == {"success":true}'

step "a CA and the hook's certificate (openssl)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj /CN=hook-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout hook.key -out hook.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' > hook.ext
openssl x509 -req -in hook.csr -CA ca.pem -CAkey ca.key -days 30 -extfile hook.ext -out hook.pem 2>/dev/null
[[ -s hook.pem ]] || fail "openssl made no hook.pem"

step "the hook over https: PORT=9443 CERT=hook.pem KEY=hook.key python3 hook.py"
APP_SECRET=$(jq -r .app_secret sealpost-data/bootstrap.json) PORT=$HOOK_TLS_PORT CERT=hook.pem KEY=hook.key \
  python3 hook.py >> hook.log &
TLS_HOOK_PID=$!
tls_listener_up() {
  [[ $(curl -s --cacert ca.pem -o /dev/null -w '%{http_code}' "https://localhost:$HOOK_TLS_PORT/hook?hub.verify_token=wrong&hub.challenge=1") == 403 ]]
}
eventually "hook.py to listen over https on $HOOK_TLS_PORT" tls_listener_up

step "subscribing the https hook before the server trusts its CA: 400, code 100"
subscribe_tls() {
  answer curl -s -X POST "$BASE/v21.0/$APP_ID/subscriptions" \
    -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"object":"whatsapp_business_account","callback_url":"https://localhost:'"$HOOK_TLS_PORT"'/hook","verify_token":"my-verify-token","fields":["messages"]}'
}
subscribe_tls
status_is 400
check '.error.code == 100'

step "cargo run -- serve --sim-clock --webhook-ca-file ca.pem"
SERVE_FLAGS+=(--webhook-ca-file "$WORK/ca.pem")
restart_server

step "subscribe the app over https"
subscribe_tls
status_is 200
check '. == {"success":true}'
# From here on the notifications go to the https hook; the http one is done.
kill "$HOOK_PID" 2>/dev/null || true
wait "$HOOK_PID" 2>/dev/null || true
HOOK_PID=$TLS_HOOK_PID

step "plain http to another host: 400, code 100"
answer curl -s -X POST "$BASE/v21.0/$APP_ID/subscriptions" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"object":"whatsapp_business_account","callback_url":"http://hooks.example.com/hook","verify_token":"my-verify-token","fields":["messages"]}'
status_is 400
check '.error.code == 100 and (.error.error_data.details | contains("https://"))'

if [[ $RESTART_EVERY_STEP != 1 ]]; then
  step "stop the server (SIGTERM) and start it again on the same data"
  restart_server
fi

step "a new subscription gets what happens from then on: the phone writes again"
answer curl -s -X POST $BASE/sim/v1/devices/4915112345678/messages \
  -H 'content-type: application/json' \
  -d '{"to":"15550783881","type":"text","text":{"body":"are you there?"}}'
status_is 200
check '.id | startswith("dev.")'
DEV_ID=$(jq -r .id <<<"$ANSWER")

step "the listener prints it under messages"
eventually "\"are you there?\" at the listener" hook_has \
  "$VALUES"' | any(.[].messages[]?; .type == "text" and .text.body == "are you there?" and .from == "4915112345678")'
hook_has "$VALUES"' | any(.[]; .messages[]?.text.body == "are you there?" and (.messages[0].id | startswith("wamid."))
    and (.contacts[0].user_id | test("^DE\\.[0-9]{20}$")) and .contacts[0].wa_id == "4915112345678"
    and .metadata.display_phone_number == "15550783881")' ||
  fail "the message notification lacks its wamid, contacts[].wa_id or a user_id DE. and 20 digits"
hook_has "$VALUES"' | any(.[]; .messages[]?.text.body == "hi") | not' ||
  fail "the listener got the \"hi\" sent before the subscription"
USER_ID=$(notifications | jq -r "$VALUES"' | map(select(any(.messages[]?; .text.body == "are you there?"))) | .[0].contacts[0].user_id')
INBOUND_WAMID=$(notifications | jq -r "$VALUES"' | [.[].messages[]? | select(.text.body == "are you there?") | .id] | .[0]')

step "send the next reply: sent, delivered and read"
business_answers
status_is 200
check '.messages[0].id | startswith("wamid.")'
WAMID2=$(jq -r '.messages[0].id' <<<"$ANSWER")
for s in sent delivered read; do
  eventually "status $s of the next reply" hook_has --arg id "$WAMID2" --arg s "$s" \
    "$VALUES"' | any(.[].statuses[]?; .id == $id and .status == $s and .recipient_id == "4915112345678"
        and .pricing == {"billable":false,"category":"service","pricing_model":"PMP","type":"free_customer_service"}
        and .conversation.origin == {"type":"service"})'
done
hook_has --arg id "$WAMID2" --arg u "$USER_ID" \
  "$VALUES"' | any(.[]; .statuses[]?.id == $id and .contacts == [{"user_id":$u,"wa_id":"4915112345678"}]
      and .messaging_product == "whatsapp" and .metadata.display_phone_number == "15550783881")' ||
  fail "a status notification is not shaped as the README shows"

step "mark the inbound message read"
answer curl -s -X POST "$BASE/v21.0/$PHONE_NUMBER_ID/messages" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"messaging_product":"whatsapp","status":"read","message_id":"'"$INBOUND_WAMID"'"}'
status_is 200
check '.success == true'

step "the phone lists its message under read_by_business"
eventually "the dev id under read_by_business" inbox_has --arg id "$DEV_ID" '.read_by_business | index($id) != null'

step "upload a file"
MEDIA_ID=$(curl -s -X POST "$BASE/v21.0/$PHONE_NUMBER_ID/media" \
  -H "authorization: Bearer $TOKEN" \
  -F messaging_product=whatsapp -F 'file=@bike.png;type=image/png' | jq -r .id)
[[ -n $MEDIA_ID && $MEDIA_ID != null ]] || fail "the upload answered no id"

step "ask for its description"
answer curl -s "$BASE/v21.0/$MEDIA_ID" -H "authorization: Bearer $TOKEN"
status_is 200
check --arg id "$MEDIA_ID" --arg size "$(stat -c %s bike.png)" --arg sha "$(sha256sum bike.png | cut -d' ' -f1)" \
  '.id == $id and .messaging_product == "whatsapp" and .mime_type == "image/png" and .file_size == $size and .sha256 == $sha'
check --arg base "$BASE" '.url | startswith($base + "/sealpost/v1/media/") and test("[?]expires=[0-9]+&signature=")'

# One step: the URL is a 5-minute capability of the process that signed it.
step "download it through the url, with the token"
URL=$(curl -s "$BASE/v21.0/$MEDIA_ID" -H "authorization: Bearer $TOKEN" | jq -r .url)
answer curl -s "$URL" -H "authorization: Bearer $TOKEN" -o copy.png
status_is 200
cmp -s copy.png bike.png || fail "copy.png differs from bike.png"

step "send it by id"
answer curl -s -X POST "$BASE/v21.0/$PHONE_NUMBER_ID/messages" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"messaging_product":"whatsapp","to":"4915112345678","type":"image","image":{"id":"'$MEDIA_ID'","caption":"your bike"}}'
status_is 200
check '.messages[0].id | startswith("wamid.")'

step "the phone receives the file itself"
eventually "the image in the device's inbox" inbox_has \
  --arg data "$(base64 < bike.png | tr -d '\n')" --arg sha "$(sha256sum bike.png | cut -d' ' -f1)" \
  '.messages | any(.content.type == "image" and .content.image.caption == "your bike"
     and .content.image.data == $data and .content.image.mime_type == "image/png" and .content.image.sha256 == $sha)'

step "a phone sends an attachment inline"
answer curl -s -X POST $BASE/sim/v1/devices/4915112345678/messages \
  -H 'content-type: application/json' \
  -d '{"to":"15550783881","type":"image","image":{"data":"'$(base64 < bike.png | tr -d '\n')'","mime_type":"image/png","caption":"my bike"}}'
status_is 200
check '.id | startswith("dev.")'

step "the webhook carries a media id, never the bytes"
eventually "the inline image at the listener" hook_has \
  "$VALUES"' | any(.[].messages[]?; .type == "image" and .image.caption == "my bike")'
hook_has --arg sha "$(sha256sum bike.png | cut -d' ' -f1)" \
  "$VALUES"' | any(.[].messages[]?; .type == "image" and .image.caption == "my bike" and (.image.id | length > 0)
      and .image.mime_type == "image/png" and .image.sha256 == $sha and (.image | has("data") | not))' ||
  fail "the image notification is not a media id with mime_type and sha256"
INBOUND_MEDIA_ID=$(notifications | jq -r "$VALUES"' | [.[].messages[]? | select(.type == "image") | .image.id] | .[0]')
answer curl -s "$BASE/v21.0/$INBOUND_MEDIA_ID" -H "authorization: Bearer $TOKEN"
status_is 200
check '.mime_type == "image/png"'

step "ask the phone where it is (location_request_message)"
answer curl -s -X POST "$BASE/v21.0/$PHONE_NUMBER_ID/messages" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"messaging_product":"whatsapp","to":"4915112345678","type":"interactive","interactive":{"type":"location_request_message","body":{"text":"Where shall we deliver?"},"action":{"name":"send_location"}}}'
status_is 200
ASK_ID=$(jq -r '.messages[0].id' <<<"$ANSWER")
eventually "the request in the device's inbox" inbox_has --arg id "$ASK_ID" \
  '.messages | any(.id == $id and .content.interactive.type == "location_request_message"
     and .content.interactive.action == {"name":"send_location"})'

step "the phone answers with its location, a reply"
answer curl -s -X POST $BASE/sim/v1/devices/4915112345678/messages \
  -H 'content-type: application/json' \
  -d '{"to":"15550783881","type":"location","location":{"latitude":52.52,"longitude":13.405,"name":"Alexanderplatz"},"context":{"id":"'$ASK_ID'"}}'
status_is 200
eventually "the location at the listener" hook_has --arg id "$ASK_ID" \
  "$VALUES"' | any(.[].messages[]?; .type == "location" and .location == {"latitude":52.52,"longitude":13.405,"name":"Alexanderplatz"}
      and .context.id == $id)'

step "delete the media object"
answer curl -s -X DELETE "$BASE/v21.0/$MEDIA_ID" -H "authorization: Bearer $TOKEN"
status_is 200
check '. == {"success":true}'

step "the deleted id answers 403, code 200"
answer curl -s "$BASE/v21.0/$MEDIA_ID" -H "authorization: Bearer $TOKEN"
status_is 403
check '.error.code == 200'

step "take the phone offline"
answer curl -s -X POST $BASE/sim/v1/devices/4915112345678/presence \
  -H 'content-type: application/json' -d '{"online":false}'
status_is 200
check '. == {"online":false,"success":true}'

step "another phone reports the number as spam"
answer curl -s -X POST $BASE/sim/v1/devices/4915112345679/report \
  -H 'content-type: application/json' -d '{"to":"15550783881","type":"spam"}'
status_is 200
check '. == {"success":true}'

step "bring the phone back online"
answer curl -s -X POST $BASE/sim/v1/devices/4915112345678/presence \
  -H 'content-type: application/json' -d '{"online":true}'
status_is 200
check '. == {"online":true,"success":true}'

step "submit a template"
answer curl -s -X POST "$BASE/v21.0/$WABA_ID/message_templates" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"name":"order_update","language":"en_US","category":"UTILITY","components":[{"type":"BODY","text":"Your order is ready."}]}'
status_is 200
check '.status == "PENDING" and .category == "UTILITY" and (.id | test("^[0-9]+$"))'

step "move the simulated clock 25 hours"
answer curl -s -X POST $BASE/sim/v1/clock/advance -H 'content-type: application/json' -d '{"seconds":90000}'
status_is 200
check '.now | type == "number"'

step "outside the window: 131047"
answer curl -s -X POST "$BASE/v21.0/$PHONE_NUMBER_ID/messages" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"messaging_product":"whatsapp","to":"4915112345678","type":"text","text":{"body":"Still there?"}}'
status_is 400
check '.error.code == 131047 and .error.message == "(#131047) Re-engagement message" and .error.type == "OAuthException"'

step "a template is still accepted outside the window"
answer curl -s -X POST "$BASE/v21.0/$PHONE_NUMBER_ID/messages" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"messaging_product":"whatsapp","to":"4915112345678","type":"template","template":{"name":"order_update","language":{"code":"en_US"}}}'
status_is 200
check '.contacts == [{"input":"4915112345678","wa_id":"4915112345678"}] and (.messages[0].id | startswith("wamid."))'
TEMPLATE_WAMID=$(jq -r '.messages[0].id' <<<"$ANSWER")

step "the phone receives the template"
eventually "the template in the device's inbox" inbox_has --arg id "$TEMPLATE_WAMID" \
  '.messages | any(.id == $id and .content.type == "template" and .content.template.name == "order_update")'

step "the device writes again: the window reopens"
answer curl -s -X POST $BASE/sim/v1/devices/4915112345678/messages \
  -H 'content-type: application/json' \
  -d '{"to":"15550783881","type":"text","text":{"body":"yes, still here"}}'
status_is 200
check '.id | startswith("dev.")'

step "it reaches the listener as a messages notification"
eventually "\"yes, still here\" at the listener" hook_has --arg u "$USER_ID" \
  "$VALUES"' | any(.[]; .messages[]?.text.body == "yes, still here" and .contacts[0].user_id == $u)'

step "answer by \"recipient\":\"DE.…\""
answer curl -s -X POST "$BASE/v21.0/$PHONE_NUMBER_ID/messages" \
  -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"messaging_product":"whatsapp","recipient":"'"$USER_ID"'","type":"text","text":{"body":"Glad to hear it."}}'
status_is 200
check --arg u "$USER_ID" '.contacts == [{"input":$u,"user_id":$u}] and (.messages[0].id | startswith("wamid."))'
RECIPIENT_WAMID=$(jq -r '.messages[0].id' <<<"$ANSWER")
eventually "the answer by user id at the phone" inbox_has --arg id "$RECIPIENT_WAMID" \
  '.messages | any(.id == $id and .content.text.body == "Glad to hear it.")'

# --- Audit and data protection -----------------------------------------------------------------

AUDITOR=$(jq -r .auditor_token $B)
DPO=$(jq -r .dpo_token $B)
INTERNAL=$(jq -r .internal_token $B)   # the operator's analytics

step "the operator's analytics may not read a message"
answer curl -s "$BASE/sealpost/v1/messages/$WAMID" -H "authorization: Bearer $INTERNAL"
status_is 403
check '.error.code == 200'

step "the auditor lists the refusal"
access_log_lists_it() {
  answer curl -s "$BASE/sealpost/v1/audit/access?principal_kind=operator&decision=denied" \
    -H "authorization: Bearer $AUDITOR"
  [[ $STATUS == 200 ]] && jq -e --arg id "$WAMID" '.data | any(.object == $id and .category == "message_content"
      and .decision == "denied" and .principal == "internal-analytics" and .principal_kind == "operator")' \
    >/dev/null 2>&1 <<<"$ANSWER"
}
eventually "the denied read in the access log" access_log_lists_it
check '.checkpoint.origin == "sealpost/audit/v1" and (.checkpoint.size | type == "number") and .paging == {"next":null}'

step "the published key"
answer curl -s $BASE/sealpost/v1/audit/public-key
status_is 200
check '.algorithm == "Ed25519" and .origin == "sealpost/audit/v1" and (.public_key | test("^[0-9a-f]{64}$"))'

step "the newest checkpoint"
answer curl -s "$BASE/sealpost/v1/audit/checkpoint" -H "authorization: Bearer $AUDITOR"
status_is 200
check '.origin == "sealpost/audit/v1" and (.size | type == "number")'
SIZE=$(jq -r .size <<<"$ANSWER")
# The README's positions (5 of 40, 20 to 40) when the log is that long, else ones inside it.
if ((SIZE >= 40)); then NEW=40; else NEW=$SIZE; fi
POSITION=$((NEW / 8)) OLD=$((NEW / 2))
((NEW >= 2)) || fail "the checkpoint's size is $SIZE"

step "an inclusion proof"
answer curl -s "$BASE/sealpost/v1/audit/proofs/inclusion?position=$POSITION&size=$NEW" -H "authorization: Bearer $AUDITOR"
status_is 200
check --argjson p "$POSITION" --argjson n "$NEW" '.position == $p and .size == $n and (.leaf | length > 0) and (.path | type == "array")'

step "a consistency proof"
answer curl -s "$BASE/sealpost/v1/audit/proofs/consistency?old=$OLD&new=$NEW" -H "authorization: Bearer $AUDITOR"
status_is 200
check --argjson o "$OLD" --argjson n "$NEW" '.old_size == $o and .new_size == $n and (.path | type == "array")'

step "a position outside the log"
answer curl -s "$BASE/sealpost/v1/audit/proofs/inclusion?position=$((SIZE + 1000))" -H "authorization: Bearer $AUDITOR"
status_is 400
check '.error.code == 100'

step "statistics"
answer curl -s "$BASE/sealpost/v1/statistics" -H "authorization: Bearer $AUDITOR"
status_is 200
check '(.data | type == "array" and length > 0) and (.checkpoint.size | type == "number")'

step "the DPO's retention report as HTML"
answer curl -s "$BASE/sealpost/v1/dpo/retention?format=html" -H "authorization: Bearer $DPO" -o report.html
status_is 200
[[ -s report.html ]] || fail "report.html is empty"
grep -qi '<html' report.html || fail "report.html is not an HTML page"

step "erase the consumer: 201 with the certificate"
answer curl -s -X POST $BASE/sealpost/v1/dpo/erasures -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' \
  -d '{"phone_number_id":"'$PHONE_NUMBER_ID'","wa_id":"4915112345678"}'
status_is 201
check '.erased == true and .certificate.format == "sealpost-erasure-certificate/1"'
check '(.certificate.subject_id | startswith("sub_")) and (.certificate.method | startswith("cryptographic erase (NIST SP 800-88 Rev. 1)"))'
check '(.certificate.event.position | type == "number") and (.certificate.checkpoint | type == "object") and (.certificate.inclusion_proof | type == "object")'
check '[.. | strings | select(contains("4915112345678"))] == []'
SUBJECT_ID=$(jq -r .certificate.subject_id <<<"$ANSWER")
ERASED_AT=$(jq -r .certificate.event.position <<<"$ANSWER")

step "the same request again: 200, erased false"
answer curl -s -X POST $BASE/sealpost/v1/dpo/erasures -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' \
  -d '{"phone_number_id":"'$PHONE_NUMBER_ID'","wa_id":"4915112345678"}'
status_is 200
check '.erased == false and (.reason | startswith("No data is held"))'

step "by subject_id: 201, the same certificate position"
answer curl -s -X POST $BASE/sealpost/v1/dpo/erasures -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' \
  -d '{"subject_id":"'$SUBJECT_ID'"}'
status_is 201
check --argjson p "$ERASED_AT" '.certificate.event.position == $p and .certificate.subject_id == "'$SUBJECT_ID'"'

# --- the end -----------------------------------------------------------------------------------

STEP_NAME="the end: no bad signature, a clean stop"
if grep -q 'BAD SIGNATURE' hook.log; then fail "the listener got a notification whose signature does not verify"; fi
stop_server
echo "walkthrough: all $STEP_NO steps answered as the README says"

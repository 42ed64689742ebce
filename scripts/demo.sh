#!/usr/bin/env bash
# The main job: sets up and builds pier, starts pierd, builds the reference
# system of docs/scenario.md with the AWS CLI (examples/ecs-exec-private-subnets),
# waits for both services, and opens an interactive shell in service 1's
# container with `aws ecs execute-command`. After the shell, pierd keeps serving
# until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

HOME_DIR="${PIER_HOME:-/var/lib/pier}"
LISTEN="${PIER_LISTEN:-127.0.0.1:4566}"
ENDPOINT="http://$LISTEN"
mkdir -p "$HOME_DIR"
build/bin/pierd --listen "$LISTEN" --home "$HOME_DIR" > "$HOME_DIR/pierd.out" 2> "$HOME_DIR/pierd.log" &
PIERD=$!
cleanup() {
  # (Ctrl-C reaches pierd too: it may be gone already.)
  kill -TERM "$PIERD" 2>/dev/null || true
  wait "$PIERD" 2>/dev/null || true
  # The kernel side goes with pierd; the store keeps the objects, and the
  # next pierd on this home makes them again (containers included).
  build/bin/pier down --all --home "$HOME_DIR" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 200); do grep -q ready "$HOME_DIR/pierd.out" 2>/dev/null && break; sleep 0.05; done
cat "$HOME_DIR/pierd.out"

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" AWS_PAGER=""
# Our session-manager-plugin first on PATH (setup.sh also links it into /usr/local/bin).
export PATH="$PWD/build/bin:$PATH"
AWS=aws; [[ -x /usr/bin/aws ]] && AWS=/usr/bin/aws   # the AWS CLI v2 (Debian's); v1 works the same

PIER_ENDPOINT="$ENDPOINT" PIER_BIN="$PWD/build/bin/pier" examples/ecs-exec-private-subnets/up.sh \
  | tee "$HOME_DIR/example-up.log"
# up.sh names each service's RUNNING task.
TASK1=$(awk '/^service 1 task RUNNING/ {print $5}' "$HOME_DIR/example-up.log")
TASK2=$(awk '/^service 2 task RUNNING/ {print $5}' "$HOME_DIR/example-up.log")
echo
echo "\$ pier ps   # where each exec agent reaches ssmmessages"
build/bin/pier --endpoint "$ENDPOINT" ps
echo
EXEC=(ecs execute-command --cluster fa-127-cluster --container fa-127-amazon-linux --interactive --command /bin/sh)
if [[ -t 0 && -t 1 ]]; then
  echo "\$ aws ecs execute-command --cluster fa-127-cluster --task $TASK1 --container fa-127-amazon-linux --interactive --command /bin/sh"
  echo "(a shell in service 1's container, in the private subnet; 'exit' ends it)"
  "$AWS" --endpoint-url "$ENDPOINT" "${EXEC[@]}" --task "$TASK1" || true
else
  echo "(no terminal: a command instead of a shell)"
  echo "\$ pier exec --cluster fa-127-cluster fa-127-service-1 -- sh -c 'hostname; grep nameserver /etc/resolv.conf'"
  build/bin/pier --endpoint "$ENDPOINT" exec --cluster fa-127-cluster fa-127-service-1 -- \
    sh -c 'hostname; grep nameserver /etc/resolv.conf'
fi
echo
echo "Service 2's container, the same way:"
echo "  aws --endpoint-url $ENDPOINT ecs execute-command --cluster fa-127-cluster --task $TASK2 \\"
echo "      --container fa-127-amazon-linux --interactive --command /bin/sh"
echo "Tear the system down: PIER_ENDPOINT=$ENDPOINT examples/ecs-exec-private-subnets/down.sh"
echo "pierd is serving on $ENDPOINT (log: $HOME_DIR/pierd.log). Ctrl-C stops it."
wait "$PIERD"

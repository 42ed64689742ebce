#!/usr/bin/env bash
# Sets up, builds, starts pierd and shows what it serves. pierd keeps running
# in the foreground until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

HOME_DIR="${PIER_HOME:-/var/lib/pier}"
LISTEN="${PIER_LISTEN:-127.0.0.1:4566}"
ENDPOINT="http://$LISTEN"
mkdir -p "$HOME_DIR"
build/bin/pierd --listen "$LISTEN" --home "$HOME_DIR" > /tmp/pierd-demo.out 2> "$HOME_DIR/pierd.log" &
PIERD=$!
AGENT=""
cleanup() {
  [[ -n "$AGENT" ]] && kill -TERM "$AGENT" 2>/dev/null
  kill -TERM "$PIERD" 2>/dev/null
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do grep -q ready /tmp/pierd-demo.out 2>/dev/null && break; sleep 0.05; done
cat /tmp/pierd-demo.out

export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
run() { echo "\$ $*"; "$@"; echo; }
run build/bin/pier --endpoint "$ENDPOINT" status
run aws --endpoint-url "$ENDPOINT" ecs create-cluster --cluster-name demo --output table
run aws --endpoint-url "$ENDPOINT" ecs register-task-definition --family web \
  --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
  --container-definitions '[{"name":"app","image":"busybox","essential":true}]' \
  --query 'taskDefinition.[taskDefinitionArn,status,compatibilities]' --output text
run /usr/bin/aws --endpoint-url "$ENDPOINT" ecs list-task-definitions --output text
# The exec path with a host-level target (ECS tasks come with the next issues).
build/bin/pier-exec-agent --target mi-0de000000000demo0 --endpoint "$ENDPOINT" \
  > /tmp/pier-agent-demo.out 2> "$HOME_DIR/agent.log" &
AGENT=$!
for _ in $(seq 100); do grep -q connected /tmp/pier-agent-demo.out 2>/dev/null && break; sleep 0.05; done
run build/bin/pier --endpoint "$ENDPOINT" exec --target mi-0de000000000demo0 -- uname -sr
echo "A shell on that target, with the AWS CLI and pier's session-manager-plugin:"
echo "  aws --endpoint-url $ENDPOINT ssm start-session --target mi-0de000000000demo0"
echo "pierd is serving on $ENDPOINT (log: $HOME_DIR/pierd.log). Ctrl-C stops it."
wait $PIERD

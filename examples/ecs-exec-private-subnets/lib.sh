# shellcheck shell=bash disable=SC2034
# Shared by up.sh and down.sh (sourced, not run).

ENDPOINT="${PIER_ENDPOINT:-http://127.0.0.1:4566}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_PAGER=""
REGION="$AWS_DEFAULT_REGION"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PIER="${PIER_BIN:-$HERE/../../build/bin/pier}"
# The AWS CLI: $AWS_CLI, else the one that starts fastest here — v1 (pip's,
# behind a pyenv shim on this machine: call it directly) — else v2 (Debian's).
# Both speak to pier the same; start-up is most of these scripts' time.
if [[ -z "${AWS_CLI:-}" ]]; then
  if command -v pyenv >/dev/null && pyenv which aws >/dev/null 2>&1; then AWS_CLI="$(pyenv which aws)"
  elif command -v aws >/dev/null; then AWS_CLI=aws
  else AWS_CLI=/usr/bin/aws; fi
fi

# The names everything is found by.
P=fa-127
CLUSTER=$P-cluster
FAMILY=$P-task
CONTAINER=$P-amazon-linux
IMAGE=$P-amazon-linux:latest
LOG_GROUP=/ecs/$P
TASK_ROLE=$P-task-role
EXEC_ROLE=$P-execution-role
SERVICES=("$P-service-1" "$P-service-2")
ENDPOINT_SERVICES=(ssmmessages ecr.dkr ecr.api logs)

die() { echo "error: $*" >&2; exit 1; }
# One line per step: what, its id, what was done.
step() { printf '%-36s %-33s %s\n' "$1" "$2" "$3"; }

# The AWS CLI against pier, text output; "None" (a null) comes back empty.
aws_() { "$AWS_CLI" --endpoint-url "$ENDPOINT" --output text "$@"; }
q() {
  local out
  out="$(aws_ "$@")" || return
  [[ "$out" == None ]] && out=""
  printf '%s' "$out"
}
# Like aws_, but an error whose code is one of $MISSING_CODES (a regex) is
# "not there": returns 3, quietly. Any other error is fatal.
MISSING_CODES='NoSuchEntity|ResourceNotFoundException|ClusterNotFoundException|NotFound'
probe() {
  local out rc=0
  out="$(aws_ "$@" 2>&1)" || rc=$?
  if ((rc != 0)); then
    grep -Eq "$MISSING_CODES" <<<"$out" && return 3
    echo "$out" >&2
    die "aws $*"
  fi
  [[ "$out" == None ]] && out=""
  printf '%s' "$out"
}

tagspec() { printf 'ResourceType=%s,Tags=[{Key=Name,Value=%s}]' "$1" "$2"; }

# wait_for WHAT SECONDS COMMAND…: until COMMAND succeeds.
wait_for() {
  local what="$1" timeout="$2"
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.25
  done
}

pier_() { "$PIER" --endpoint "$ENDPOINT" "$@"; }

preflight() {
  command -v "$AWS_CLI" >/dev/null || die "no AWS CLI (aws) found"
  [[ -x "$PIER" ]] || die "no pier binary at $PIER (build pier, or set PIER_BIN)"
  q sts get-caller-identity --query Account >/dev/null || die "pier does not answer on $ENDPOINT (set PIER_ENDPOINT)"
}

the_vpcs() { q ec2 describe-vpcs --filters "Name=tag:Name,Values=$P-vpc" --query 'Vpcs[].VpcId'; }

#!/usr/bin/env bash
# Builds the reference system of docs/scenario.md (but CloudFormation, ECR,
# CodeBuild, the secret and the Lambda) with the AWS CLI against pier.
# Idempotent: what exists (found by its Name tag or its name) is kept.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
preflight
START=$SECONDS

# IAM, logs, the cluster, the image and the task definition need nothing of
# the network: they are built in the background while the network is (the AWS
# CLI's start-up, about 0.7 s a call, is most of this script's time).
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
platform() {
# --- IAM and logs ----------------------------------------------------------
  TRUST='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
  EXEC_POLICY='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ssmmessages:CreateControlChannel","ssmmessages:CreateDataChannel","ssmmessages:OpenControlChannel","ssmmessages:OpenDataChannel"],"Resource":"*"}]}'
  # role NAME -> $ID (its ARN)
  role() {
    local rc=0
    ID="$(probe iam get-role --role-name "$1" --query Role.Arn)" || rc=$?
    DID=exists
    if ((rc == 3)); then
      ID="$(q iam create-role --role-name "$1" --assume-role-policy-document "$TRUST" --query Role.Arn)"
      DID=created
    else
      aws_ iam update-assume-role-policy --role-name "$1" --policy-document "$TRUST"
    fi
  }
  role "$TASK_ROLE"; TASK_ROLE_ARN=$ID
  aws_ iam put-role-policy --role-name "$TASK_ROLE" --policy-name $P-ssmmessages --policy-document "$EXEC_POLICY"
  step "task role (+ ssmmessages policy)" "$TASK_ROLE" "$DID"
  role "$EXEC_ROLE"; EXEC_ROLE_ARN=$ID
  aws_ iam attach-role-policy --role-name "$EXEC_ROLE" \
    --policy-arn arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy
  step "execution role" "$EXEC_ROLE" "$DID"
  
  if [[ -z "$(q logs describe-log-groups --log-group-name-prefix "$LOG_GROUP" \
               --query "logGroups[?logGroupName=='$LOG_GROUP'].logGroupName")" ]]; then
    aws_ logs create-log-group --log-group-name "$LOG_GROUP"
    DID=created
  else
    DID=exists
  fi
  step "log group" "$LOG_GROUP" "$DID"
  
  # --- ECS -------------------------------------------------------------------
  if [[ "$(probe ecs describe-clusters --clusters "$CLUSTER" --query 'clusters[0].status')" == ACTIVE ]]; then
    DID=exists
  else
    aws_ ecs create-cluster --cluster-name "$CLUSTER" >/dev/null
    DID=created
  fi
  step "cluster" "$CLUSTER" "$DID"
  
  if pier_ image ls | awk 'NR > 1 {print $1}' | grep -qx "$IMAGE"; then
    DID=exists
  else
    pier_ image base "$IMAGE" >/dev/null
    DID="created (pier image base)"
  fi
  step "image" "$IMAGE" "$DID"
  
  case "$(uname -m)" in
    x86_64 | amd64) ARCH=X86_64 ;;
    aarch64 | arm64) ARCH=ARM64 ;;
    *) die "no Fargate architecture for $(uname -m)" ;;
  esac
  TASK_DEF="$(jq -n --arg family "$FAMILY" --arg task_role "$TASK_ROLE_ARN" --arg exec_role "$EXEC_ROLE_ARN" \
    --arg arch "$ARCH" --arg name "$CONTAINER" --arg image "$IMAGE" --arg group "$LOG_GROUP" --arg region "$REGION" \
    --arg prefix "$P" '{
      family: $family, taskRoleArn: $task_role, executionRoleArn: $exec_role,
      networkMode: "awsvpc", requiresCompatibilities: ["FARGATE"], cpu: "512", memory: "1024",
      runtimePlatform: {operatingSystemFamily: "LINUX", cpuArchitecture: $arch},
      containerDefinitions: [{
        name: $name, image: $image, essential: true,
        command: ["/bin/sh", "-c", "sleep 3600"],
        linuxParameters: {initProcessEnabled: true},
        logConfiguration: {logDriver: "awslogs", options: {
          "awslogs-group": $group, "awslogs-region": $region, "awslogs-stream-prefix": $prefix}}
      }]
    }')"
  # The definition's digest, as a tag: registered again only when it changes.
  SPEC="$(sha256sum <<<"$TASK_DEF" | cut -c1-16)"
  rc=0
  current="$(MISSING_CODES=ClientException probe ecs describe-task-definition --task-definition "$FAMILY" --include TAGS \
             --query "[taskDefinition.taskDefinitionArn, taskDefinition.status, tags[?key=='$P-spec'].value | [0]]")" || rc=$?
  read -r TD_ARN td_status td_spec <<<"${current:-}" || true
  if ((rc == 0)) && [[ "$td_status" == ACTIVE && "$td_spec" == "$SPEC" ]]; then
    DID=exists
  else
    TD_ARN="$(q ecs register-task-definition \
              --cli-input-json "$(jq --arg spec "$SPEC" --arg key "$P-spec" '. + {tags: [{key: $key, value: $spec}]}' <<<"$TASK_DEF")" \
              --query taskDefinition.taskDefinitionArn)"
    DID=registered
  fi
  step "task definition ($ARCH)" "${TD_ARN##*/}" "$DID"
  echo "TD_ARN=$TD_ARN" > "$WORK/platform.vars"
}
platform > "$WORK/platform.out" 2>&1 &
PLATFORM=$!

# --- the network -----------------------------------------------------------
VPC="$(the_vpcs | awk '{print $1}')"
if [[ -z "$VPC" ]]; then
  VPC="$(q ec2 create-vpc --cidr-block 10.0.0.0/16 --tag-specifications "$(tagspec vpc $P-vpc)" --query Vpc.VpcId)"
  did=created
  # A new VPC holds nothing yet: what lives in it is made without looking first.
  FRESH=1
else
  did=exists
fi
aws_ ec2 modify-vpc-attribute --vpc-id "$VPC" --enable-dns-support '{"Value":true}'
aws_ ec2 modify-vpc-attribute --vpc-id "$VPC" --enable-dns-hostnames '{"Value":true}'
step "vpc 10.0.0.0/16 (DNS on)" "$VPC" "$did"

# subnet NAME CIDR AZ -> $ID
FRESH="${FRESH:-}"
subnet() {
  ID=""
  [[ -n "$FRESH" ]] || ID="$(q ec2 describe-subnets --filters "Name=vpc-id,Values=$VPC" "Name=tag:Name,Values=$1" \
        --query 'Subnets[0].SubnetId')"
  if [[ -z "$ID" ]]; then
    ID="$(q ec2 create-subnet --vpc-id "$VPC" --cidr-block "$2" --availability-zone "$3" \
          --tag-specifications "$(tagspec subnet "$1")" --query Subnet.SubnetId)"
    step "subnet $2 ($3)" "$ID" created
  else
    step "subnet $2 ($3)" "$ID" exists
  fi
}
subnet $P-public-subnet 10.0.1.0/24 "${REGION}a"; PUBLIC=$ID
subnet $P-container-subnet-1 10.0.2.0/24 "${REGION}a"; SUBNET1=$ID
subnet $P-container-subnet-2 10.0.3.0/24 "${REGION}c"; SUBNET2=$ID

IGW="$(q ec2 describe-internet-gateways --filters "Name=tag:Name,Values=$P-igw" \
       --query 'InternetGateways[0].InternetGatewayId')"
did=exists
if [[ -z "$IGW" ]]; then
  IGW="$(q ec2 create-internet-gateway --tag-specifications "$(tagspec internet-gateway $P-igw)" \
         --query InternetGateway.InternetGatewayId)"
  did=created
fi
if [[ -n "$FRESH" ]] || [[ -z "$(q ec2 describe-internet-gateways --internet-gateway-ids "$IGW" \
             --query "InternetGateways[0].Attachments[?VpcId=='$VPC'].VpcId")" ]]; then
  aws_ ec2 attach-internet-gateway --internet-gateway-id "$IGW" --vpc-id "$VPC"
  did="$did, attached"
fi
step "internet gateway" "$IGW" "$did"

# route_table NAME SUBNET -> $ID, associated with SUBNET
route_table() {
  local did=exists
  ID=""
  [[ -n "$FRESH" ]] || ID="$(q ec2 describe-route-tables --filters "Name=vpc-id,Values=$VPC" "Name=tag:Name,Values=$1" \
        --query 'RouteTables[0].RouteTableId')"
  if [[ -z "$ID" ]]; then
    ID="$(q ec2 create-route-table --vpc-id "$VPC" --tag-specifications "$(tagspec route-table "$1")" \
          --query RouteTable.RouteTableId)"
    did=created
  fi
  if [[ "$did" == created ]] || [[ -z "$(q ec2 describe-route-tables --route-table-ids "$ID" \
               --query "RouteTables[0].Associations[?SubnetId=='$2'].SubnetId")" ]]; then
    aws_ ec2 associate-route-table --route-table-id "$ID" --subnet-id "$2" >/dev/null
    did="$did, associated"
  fi
  DID=$did
}
# default_route TABLE --gateway-id ID | --nat-gateway-id ID | none
default_route() {
  local table="$1" current=""
  [[ "$DID" == created* ]] || current="$(q ec2 describe-route-tables --route-table-ids "$table" \
             --query "RouteTables[0].Routes[?DestinationCidrBlock=='0.0.0.0/0'] | [0].[GatewayId, NatGatewayId, State]")"
  if [[ "$2" == none ]]; then
    if [[ -n "$current" ]]; then
      aws_ ec2 delete-route --route-table-id "$table" --destination-cidr-block 0.0.0.0/0
      DID="$DID, default route removed"
    fi
    return
  fi
  if [[ -z "$current" ]]; then
    aws_ ec2 create-route --route-table-id "$table" --destination-cidr-block 0.0.0.0/0 "$2" "$3" >/dev/null
    DID="$DID, route added"
  elif ! grep -qw -- "$3" <<<"$current" || grep -qw blackhole <<<"$current"; then
    aws_ ec2 replace-route --route-table-id "$table" --destination-cidr-block 0.0.0.0/0 "$2" "$3"
    DID="$DID, route replaced"
  fi
}
route_table $P-public-rt "$PUBLIC"; PUBLIC_RT=$ID
default_route "$PUBLIC_RT" --gateway-id "$IGW"
step "public route table 0/0 -> igw" "$PUBLIC_RT" "$DID"

EIP="$(q ec2 describe-addresses --filters "Name=tag:Name,Values=$P-nat-eip" --query 'Addresses[0].AllocationId')"
did=exists
if [[ -z "$EIP" ]]; then
  EIP="$(q ec2 allocate-address --domain vpc --tag-specifications "$(tagspec elastic-ip $P-nat-eip)" \
         --query AllocationId)"
  did=created
fi
EIP_DID=$did
step "elastic ip $(q ec2 describe-addresses --allocation-ids "$EIP" --query 'Addresses[0].PublicIp')" "$EIP" "$did"

NAT=""
[[ -n "$FRESH" ]] || NAT="$(q ec2 describe-nat-gateways --filter "Name=vpc-id,Values=$VPC" "Name=tag:Name,Values=$P-nat" \
       "Name=state,Values=pending,available" --query 'NatGateways[0].NatGatewayId')"
did=exists
eip_free() {
  [[ -z "$(q ec2 describe-addresses --allocation-ids "$EIP" --query 'Addresses[0].AssociationId')" ]]
}
if [[ -z "$NAT" ]]; then
  # A NAT gateway of an earlier run still deleting may hold the address.
  [[ "$EIP_DID" == created ]] || wait_for "the elastic ip to be free" 120 eip_free
  NAT="$(q ec2 create-nat-gateway --subnet-id "$PUBLIC" --allocation-id "$EIP" \
         --tag-specifications "$(tagspec natgateway $P-nat)" --query NatGateway.NatGatewayId)"
  did=created
fi
nat_available() {
  local s
  s="$(q ec2 describe-nat-gateways --nat-gateway-ids "$NAT" --query 'NatGateways[0].State')"
  [[ "$s" == failed ]] && die "NAT gateway $NAT failed"
  [[ "$s" == available ]]
}
wait_for "NAT gateway $NAT" 180 nat_available
step "nat gateway (available)" "$NAT" "$did"

route_table $P-container-rt-1 "$SUBNET1"; RT1=$ID
default_route "$RT1" --nat-gateway-id "$NAT"
step "subnet 1 route table 0/0 -> nat" "$RT1" "$DID"
route_table $P-container-rt-2 "$SUBNET2"; RT2=$ID
default_route "$RT2" none
step "subnet 2 route table (no 0/0)" "$RT2" "$DID"

# security_group NAME DESCRIPTION -> $ID
security_group() {
  ID=""
  [[ -n "$FRESH" ]] || ID="$(q ec2 describe-security-groups --filters "Name=vpc-id,Values=$VPC" "Name=group-name,Values=$1" \
        --query 'SecurityGroups[0].GroupId')"
  DID=exists
  if [[ -z "$ID" ]]; then
    ID="$(q ec2 create-security-group --vpc-id "$VPC" --group-name "$1" --description "$2" \
          --tag-specifications "$(tagspec security-group "$1")" --query GroupId)"
    DID=created
  fi
}
security_group $P-container-sg "fa-127 containers: no ingress"; CONTAINER_SG=$ID
step "container security group" "$CONTAINER_SG" "$DID"
security_group $P-endpoint-sg "fa-127 endpoints: 443 from the containers"; ENDPOINT_SG=$ID
if [[ "$DID" == created ]] || [[ "$(q ec2 describe-security-groups --group-ids "$ENDPOINT_SG" --query "contains(SecurityGroups[0].IpPermissions[?IpProtocol=='tcp' && FromPort==\`443\` && ToPort==\`443\`].UserIdGroupPairs[].GroupId, '$CONTAINER_SG')")" != True ]]; then
  aws_ ec2 authorize-security-group-ingress --group-id "$ENDPOINT_SG" --ip-permissions \
    "[{\"IpProtocol\":\"tcp\",\"FromPort\":443,\"ToPort\":443,\"UserIdGroupPairs\":[{\"GroupId\":\"$CONTAINER_SG\"}]}]" >/dev/null
  DID="$DID, 443 from $CONTAINER_SG"
fi
step "endpoint security group" "$ENDPOINT_SG" "$DID"

# endpoint SERVICE -> $ID (an endpoint of the VPC for com.amazonaws.REGION.SERVICE)
endpoint_of() {
  [[ -z "$FRESH" ]] || return 0
  q ec2 describe-vpc-endpoints --filters "Name=vpc-id,Values=$VPC" "Name=service-name,Values=com.amazonaws.$REGION.$1" \
    "Name=vpc-endpoint-state,Values=pendingAcceptance,pending,available" --query 'VpcEndpoints[0].VpcEndpointId'
}
ID="$(endpoint_of s3)"
DID=exists
if [[ -z "$ID" ]]; then
  ID="$(q ec2 create-vpc-endpoint --vpc-id "$VPC" --vpc-endpoint-type Gateway --service-name "com.amazonaws.$REGION.s3" \
        --route-table-ids "$RT2" --tag-specifications "$(tagspec vpc-endpoint $P-s3-endpoint)" \
        --query VpcEndpoint.VpcEndpointId)"
  DID=created
elif [[ "$(q ec2 describe-vpc-endpoints --vpc-endpoint-ids "$ID" --query "contains(VpcEndpoints[0].RouteTableIds, '$RT2')")" != True ]]; then
  aws_ ec2 modify-vpc-endpoint --vpc-endpoint-id "$ID" --add-route-table-ids "$RT2" >/dev/null
  DID="$DID, on $RT2"
fi
step "s3 gateway endpoint (subnet 2's rt)" "$ID" "$DID"
ENDPOINT_IDS=("$ID")
# One background job per interface endpoint (independent calls).
interface_endpoint() {
  local svc="$1" id did=exists
  id="$(endpoint_of "$svc")"
  if [[ -z "$id" ]]; then
    id="$(q ec2 create-vpc-endpoint --vpc-id "$VPC" --vpc-endpoint-type Interface \
          --service-name "com.amazonaws.$REGION.$svc" --subnet-ids "$SUBNET2" --security-group-ids "$ENDPOINT_SG" \
          --private-dns-enabled --tag-specifications "$(tagspec vpc-endpoint "$P-${svc//./-}-endpoint")" \
          --query VpcEndpoint.VpcEndpointId)"
    did=created
  fi
  echo "$id $did" > "$WORK/endpoint.$svc"
}
jobs_=()
for svc in "${ENDPOINT_SERVICES[@]}"; do
  interface_endpoint "$svc" &
  jobs_+=($!)
done
for j in "${jobs_[@]}"; do wait "$j" || die "creating an interface endpoint failed"; done
for svc in "${ENDPOINT_SERVICES[@]}"; do
  read -r ID DID < "$WORK/endpoint.$svc"
  step "$svc interface endpoint" "$ID" "$DID"
  ENDPOINT_IDS+=("$ID")
done
endpoints_available() {
  [[ -z "$(q ec2 describe-vpc-endpoints --vpc-endpoint-ids "${ENDPOINT_IDS[@]}" \
           --query "VpcEndpoints[?State!='available'].VpcEndpointId")" ]]
}
wait_for "the VPC endpoints" 180 endpoints_available
step "vpc endpoints available" "${#ENDPOINT_IDS[@]}" ok

# --- the platform's side, built meanwhile (see above) ---------------------
wait "$PLATFORM" || { cat "$WORK/platform.out"; die "the IAM, logs and ECS part failed"; }
cat "$WORK/platform.out"
# shellcheck disable=SC1091
source "$WORK/platform.vars"


# service NAME SUBNET
service() {
  local name="$1" subnet="$2" status td exec
  local net="awsvpcConfiguration={subnets=[$subnet],securityGroups=[$CONTAINER_SG],assignPublicIp=DISABLED}"
  read -r status td exec <<<"$(q ecs describe-services --cluster "$CLUSTER" --services "$name" \
                               --query 'services[0].[status, taskDefinition, enableExecuteCommand]')" || true
  if [[ "$status" == DRAINING ]]; then
    # Left over from a down.sh under way: it must finish first.
    service_gone() { [[ "$(q ecs describe-services --cluster "$CLUSTER" --services "$name" \
                            --query 'services[0].status')" != DRAINING ]]; }
    wait_for "service $name to drain" 300 service_gone
    status=INACTIVE
  fi
  if [[ "$status" == ACTIVE ]]; then
    if [[ "$td" != "$TD_ARN" || "$exec" != True ]]; then
      aws_ ecs update-service --cluster "$CLUSTER" --service "$name" --task-definition "$TD_ARN" \
        --desired-count 1 --enable-execute-command --network-configuration "$net" >/dev/null
      DID=updated
    else
      aws_ ecs update-service --cluster "$CLUSTER" --service "$name" --desired-count 1 >/dev/null
      DID=exists
    fi
  else
    aws_ ecs create-service --cluster "$CLUSTER" --service-name "$name" --task-definition "$TD_ARN" \
      --desired-count 1 --launch-type FARGATE --enable-execute-command --network-configuration "$net" >/dev/null
    DID=created
  fi
  step "service ($subnet)" "$name" "$DID"
}
service "${SERVICES[0]}" "$SUBNET1"
service "${SERVICES[1]}" "$SUBNET2"

# --- until each service runs its one task -----------------------------------
# running_task SERVICE -> the id of its one RUNNING task of the current definition, else nothing
running_task() {
  local arns
  arns="$(q ecs list-tasks --cluster "$CLUSTER" --service-name "$1" --desired-status RUNNING --query taskArns)"
  [[ -n "$arns" ]] || return 0
  # shellcheck disable=SC2086
  arns="$(q ecs describe-tasks --cluster "$CLUSTER" --tasks $arns \
          --query "tasks[?lastStatus=='RUNNING' && taskDefinitionArn=='$TD_ARN'].taskArn")"
  [[ -n "$arns" && "$(wc -w <<<"$arns")" -eq 1 ]] && echo "${arns##*/}"
  return 0
}
both_running() {
  TASK1="$(running_task "${SERVICES[0]}")"
  TASK2="$(running_task "${SERVICES[1]}")"
  [[ -n "$TASK1" && -n "$TASK2" ]]
}
if ! (wait_for "both services to run one task" "${PIER_EXAMPLE_TIMEOUT:-300}" both_running); then
  for s in "${SERVICES[@]}"; do
    echo "--- $s, latest events:" >&2
    aws_ ecs describe-services --cluster "$CLUSTER" --services "$s" --query 'services[0].events[:5].message' >&2 || true
  done
  exit 1
fi
both_running
step "service 1 task RUNNING" "$TASK1" "subnet 1 (NAT)"
step "service 2 task RUNNING" "$TASK2" "subnet 2 (endpoints only)"
echo "up in $((SECONDS - START))s."
echo
echo "ECS Exec into them (point the CLI at pier: add --endpoint-url $ENDPOINT):"
echo "aws ecs execute-command --cluster $CLUSTER --task $TASK1 --container $CONTAINER --interactive --command \"/bin/sh\""
echo "aws ecs execute-command --cluster $CLUSTER --task $TASK2 --container $CONTAINER --interactive --command \"/bin/sh\""

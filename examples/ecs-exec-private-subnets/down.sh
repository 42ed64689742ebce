#!/usr/bin/env bash
# Tears down what up.sh built, dependents first. Idempotent: what is not
# there is skipped, so running it when nothing exists succeeds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
preflight
START=$SECONDS

# --- ECS -------------------------------------------------------------------
if [[ "$(probe ecs describe-clusters --clusters "$CLUSTER" --query 'clusters[0].status')" == ACTIVE ]]; then
  for s in "${SERVICES[@]}"; do
    status="$(q ecs describe-services --cluster "$CLUSTER" --services "$s" --query 'services[0].status')"
    if [[ "$status" == ACTIVE ]]; then
      aws_ ecs delete-service --cluster "$CLUSTER" --service "$s" --force >/dev/null
      step "service" "$s" "deleted (--force)"
    elif [[ "$status" == DRAINING ]]; then
      step "service" "$s" "draining"
    fi
  done
  # Until every task of the cluster is STOPPED (and with it its ENI gone).
  tasks_stopped() {
    local arns
    arns="$(q ecs list-tasks --cluster "$CLUSTER" --desired-status RUNNING --query taskArns)"
    arns="$arns $(q ecs list-tasks --cluster "$CLUSTER" --desired-status STOPPED --query taskArns)"
    [[ -z "${arns// /}" ]] && return 0
    # shellcheck disable=SC2086
    [[ -z "$(q ecs describe-tasks --cluster "$CLUSTER" --tasks $arns --query "tasks[?lastStatus!='STOPPED'].taskArn")" ]]
  }
  wait_for "the tasks to stop" 300 tasks_stopped
  services_gone() {
    [[ -z "$(q ecs describe-services --cluster "$CLUSTER" --services "${SERVICES[@]}" \
             --query "services[?status!='INACTIVE'].serviceName")" ]]
  }
  wait_for "the services to go" 300 services_gone
  step "tasks" "$CLUSTER" stopped
  aws_ ecs delete-cluster --cluster "$CLUSTER" >/dev/null
  step "cluster" "$CLUSTER" deleted
fi

for arn in $(q ecs list-task-definitions --family-prefix "$FAMILY" --status ACTIVE --query taskDefinitionArns); do
  aws_ ecs deregister-task-definition --task-definition "$arn" >/dev/null
  step "task definition" "${arn##*/}" deregistered
done

if [[ -n "$(q logs describe-log-groups --log-group-name-prefix "$LOG_GROUP" \
             --query "logGroups[?logGroupName=='$LOG_GROUP'].logGroupName")" ]]; then
  aws_ logs delete-log-group --log-group-name "$LOG_GROUP"
  step "log group" "$LOG_GROUP" deleted
fi

# --- IAM -------------------------------------------------------------------
for role in "$TASK_ROLE" "$EXEC_ROLE"; do
  rc=0
  probe iam get-role --role-name "$role" --query Role.RoleName >/dev/null || rc=$?
  ((rc == 0)) || continue
  for p in $(q iam list-role-policies --role-name "$role" --query PolicyNames); do
    aws_ iam delete-role-policy --role-name "$role" --policy-name "$p"
  done
  for arn in $(q iam list-attached-role-policies --role-name "$role" --query 'AttachedPolicies[].PolicyArn'); do
    aws_ iam detach-role-policy --role-name "$role" --policy-arn "$arn"
  done
  aws_ iam delete-role --role-name "$role"
  step "role (policies first)" "$role" deleted
done

# --- the network -----------------------------------------------------------
for VPC in $(the_vpcs); do
  eps="$(q ec2 describe-vpc-endpoints --filters "Name=vpc-id,Values=$VPC" \
         --query "VpcEndpoints[?State!='deleted' && State!='deleting'].VpcEndpointId")"
  if [[ -n "$eps" ]]; then
    # shellcheck disable=SC2086
    aws_ ec2 delete-vpc-endpoints --vpc-endpoint-ids $eps >/dev/null
    step "vpc endpoints" "$(wc -w <<<"$eps")" deleted
  fi
  endpoints_gone() {
    [[ -z "$(q ec2 describe-vpc-endpoints --filters "Name=vpc-id,Values=$VPC" \
             --query "VpcEndpoints[?State!='deleted'].VpcEndpointId")" ]]
  }
  wait_for "the VPC endpoints to go" 180 endpoints_gone

  for nat in $(q ec2 describe-nat-gateways --filter "Name=vpc-id,Values=$VPC" "Name=state,Values=pending,available" \
               --query 'NatGateways[].NatGatewayId'); do
    aws_ ec2 delete-nat-gateway --nat-gateway-id "$nat" >/dev/null
    step "nat gateway" "$nat" deleting
  done
  nats_gone() {
    [[ -z "$(q ec2 describe-nat-gateways --filter "Name=vpc-id,Values=$VPC" "Name=state,Values=pending,available,deleting" \
             --query 'NatGateways[].NatGatewayId')" ]]
  }
  wait_for "the NAT gateway to be deleted" 180 nats_gone

  # Every ENI left in the VPC (tasks', endpoints') gone before the subnets go.
  enis_gone() {
    [[ -z "$(q ec2 describe-network-interfaces --filters "Name=vpc-id,Values=$VPC" \
             --query 'NetworkInterfaces[].NetworkInterfaceId')" ]]
  }
  wait_for "the VPC's network interfaces to go" 180 enis_gone
done

# The NAT gateway's address (it may outlive the VPC: found by its tag).
for eip in $(q ec2 describe-addresses --filters "Name=tag:Name,Values=$P-nat-eip" --query 'Addresses[].AllocationId'); do
  aws_ ec2 release-address --allocation-id "$eip"
  step "elastic ip" "$eip" released
done

for VPC in $(the_vpcs); do
  # Route tables but the main one: their routes, associations, then the table.
  # shellcheck disable=SC2016
  for rt in $(q ec2 describe-route-tables --filters "Name=vpc-id,Values=$VPC" \
              --query 'RouteTables[?length(Associations[?Main]) == `0`].RouteTableId'); do
    if [[ -n "$(q ec2 describe-route-tables --route-table-ids "$rt" \
                 --query "RouteTables[0].Routes[?DestinationCidrBlock=='0.0.0.0/0'].DestinationCidrBlock")" ]]; then
      aws_ ec2 delete-route --route-table-id "$rt" --destination-cidr-block 0.0.0.0/0
    fi
    for assoc in $(q ec2 describe-route-tables --route-table-ids "$rt" \
                   --query 'RouteTables[0].Associations[].RouteTableAssociationId'); do
      aws_ ec2 disassociate-route-table --association-id "$assoc"
    done
    aws_ ec2 delete-route-table --route-table-id "$rt"
    step "route table" "$rt" deleted
  done

  for igw in $(q ec2 describe-internet-gateways --filters "Name=attachment.vpc-id,Values=$VPC" \
               --query 'InternetGateways[].InternetGatewayId'); do
    aws_ ec2 detach-internet-gateway --internet-gateway-id "$igw" --vpc-id "$VPC"
    aws_ ec2 delete-internet-gateway --internet-gateway-id "$igw"
    step "internet gateway" "$igw" "detached, deleted"
  done

  # Security groups but the default one: first the rules that name other
  # groups (the endpoint group's rule names the container group), then the groups.
  sgs="$(q ec2 describe-security-groups --filters "Name=vpc-id,Values=$VPC" \
         --query "SecurityGroups[?GroupName!='default'].GroupId")"
  for sg in $sgs; do
    perms="$(aws_ --output json ec2 describe-security-groups --group-ids "$sg" --query 'SecurityGroups[0].IpPermissions')"
    if [[ "$(jq length <<<"$perms")" != 0 ]]; then
      aws_ ec2 revoke-security-group-ingress --group-id "$sg" --ip-permissions "$perms" >/dev/null
    fi
  done
  for sg in $sgs; do
    aws_ ec2 delete-security-group --group-id "$sg"
    step "security group" "$sg" deleted
  done

  for sn in $(q ec2 describe-subnets --filters "Name=vpc-id,Values=$VPC" --query 'Subnets[].SubnetId'); do
    aws_ ec2 delete-subnet --subnet-id "$sn"
    step "subnet" "$sn" deleted
  done
  aws_ ec2 delete-vpc --vpc-id "$VPC"
  step "vpc" "$VPC" deleted
done

# Internet gateways by their tag that no VPC of ours held (e.g. a run of up.sh cut short).
for igw in $(q ec2 describe-internet-gateways --filters "Name=tag:Name,Values=$P-igw" \
             --query 'InternetGateways[].InternetGatewayId'); do
  for vpc in $(q ec2 describe-internet-gateways --internet-gateway-ids "$igw" --query 'InternetGateways[0].Attachments[].VpcId'); do
    aws_ ec2 detach-internet-gateway --internet-gateway-id "$igw" --vpc-id "$vpc"
  done
  aws_ ec2 delete-internet-gateway --internet-gateway-id "$igw"
  step "internet gateway" "$igw" deleted
done

if pier_ image ls | awk 'NR > 1 {print $1}' | grep -qx "$IMAGE"; then
  pier_ image rm "$IMAGE" >/dev/null
  step "image" "$IMAGE" "removed (pier image rm)"
fi
echo "down in $((SECONDS - START))s."

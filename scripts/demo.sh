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
  # (Ctrl-C reaches them too: either may be gone already.)
  [[ -n "$AGENT" ]] && kill -TERM "$AGENT" 2>/dev/null || true
  kill -TERM "$PIERD" 2>/dev/null || true
  wait 2>/dev/null || true
  # The kernel side goes with pierd; the store keeps the objects, and the
  # next pierd on this home makes them again.
  build/bin/pier down --all --home "$HOME_DIR" 2>/dev/null || true
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
# The exec path with a host-level target (ECS Exec into tasks comes with the next issue).
build/bin/pier-exec-agent --target mi-0de000000000demo0 --endpoint "$ENDPOINT" \
  > /tmp/pier-agent-demo.out 2> "$HOME_DIR/agent.log" &
AGENT=$!
for _ in $(seq 100); do grep -q connected /tmp/pier-agent-demo.out 2>/dev/null && break; sleep 0.05; done
run build/bin/pier --endpoint "$ENDPOINT" exec --target mi-0de000000000demo0 -- uname -sr
# The scenario's network, built with the AWS CLI and made by the kernel: a
# public subnet with an internet gateway and a NAT gateway, a private subnet
# routed to the NAT, an ENI there, and a task.
ec2() { aws --endpoint-url "$ENDPOINT" --output text ec2 "$@"; }
VPC=$(ec2 describe-vpcs --filters Name=tag:Name,Values=pier-demo --query 'Vpcs[0].VpcId')
if [[ "$VPC" == "None" || -z "$VPC" ]]; then
  VPC=$(ec2 create-vpc --cidr-block 10.0.0.0/16 --query Vpc.VpcId \
        --tag-specifications 'ResourceType=vpc,Tags=[{Key=Name,Value=pier-demo}]')
  PUB=$(ec2 create-subnet --vpc-id "$VPC" --cidr-block 10.0.0.0/24 --query Subnet.SubnetId)
  PRIV=$(ec2 create-subnet --vpc-id "$VPC" --cidr-block 10.0.1.0/24 --query Subnet.SubnetId)
  IGW=$(ec2 create-internet-gateway --query InternetGateway.InternetGatewayId)
  ec2 attach-internet-gateway --internet-gateway-id "$IGW" --vpc-id "$VPC"
  RT=$(ec2 create-route-table --vpc-id "$VPC" --query RouteTable.RouteTableId)
  ec2 create-route --route-table-id "$RT" --destination-cidr-block 0.0.0.0/0 --gateway-id "$IGW" > /dev/null
  ec2 associate-route-table --route-table-id "$RT" --subnet-id "$PUB" > /dev/null
  EIP=$(ec2 allocate-address --domain vpc --query AllocationId)
  NAT=$(ec2 create-nat-gateway --subnet-id "$PUB" --allocation-id "$EIP" --query NatGateway.NatGatewayId)
  PRT=$(ec2 create-route-table --vpc-id "$VPC" --query RouteTable.RouteTableId)
  ec2 create-route --route-table-id "$PRT" --destination-cidr-block 0.0.0.0/0 --nat-gateway-id "$NAT" > /dev/null
  ec2 associate-route-table --route-table-id "$PRT" --subnet-id "$PRIV" > /dev/null
  ec2 create-network-interface --subnet-id "$PRIV" --description pier-demo > /dev/null
fi
ENI=$(ec2 describe-network-interfaces --filters Name=description,Values=pier-demo \
      --query 'NetworkInterfaces[0].NetworkInterfaceId')
if [[ $EUID -eq 0 ]]; then
  for _ in $(seq 100); do
    [[ $(ec2 describe-network-interfaces --network-interface-ids "$ENI" --query 'NetworkInterfaces[0].Status') == available ]] && break
    sleep 0.1
  done
  run build/bin/pier --endpoint "$ENDPOINT" net exec "$ENI" -- ip -4 -o addr show pier-eth0
  # The VPC's resolver names the service; the NAT gateway takes the ENI to
  # its public endpoint, where pierd answers with a certificate of pier's CA.
  run build/bin/pier --endpoint "$ENDPOINT" net exec "$ENI" -- getent hosts ssmmessages.us-east-1.amazonaws.com
  for _ in $(seq 50); do
    build/bin/pier --endpoint "$ENDPOINT" net exec "$ENI" -- curl -s -o /dev/null --max-time 2 \
      --cacert "$HOME_DIR/ca/ca.pem" https://ssmmessages.us-east-1.amazonaws.com/ && break
    sleep 0.2
  done
  run build/bin/pier --endpoint "$ENDPOINT" net exec "$ENI" -- curl -s --cacert "$HOME_DIR/ca/ca.pem" \
    -w '\nHTTP %{http_code}, certificate verified against pier CA\n' https://ssmmessages.us-east-1.amazonaws.com/
  echo "The endpoint's access log ($HOME_DIR/endpoint-access.log) shows the NAT gateway's address:"
  tail -n 1 "$HOME_DIR/endpoint-access.log"; echo
  # A Fargate task in the private subnet: a busybox image made offline, one
  # runc container on the ENI's namespace, its output in CloudWatch Logs.
  run build/bin/pier --endpoint "$ENDPOINT" image base busybox:latest
  aws --endpoint-url "$ENDPOINT" logs create-log-group --log-group-name /ecs/hello 2>/dev/null || true
  aws --endpoint-url "$ENDPOINT" ecs register-task-definition --family hello \
    --requires-compatibilities FARGATE --network-mode awsvpc --cpu 256 --memory 512 \
    --container-definitions '[{"name":"app","image":"busybox:latest","linuxParameters":{"initProcessEnabled":true},
      "command":["sh","-c","echo hello from $(hostname); grep nameserver /etc/resolv.conf; sleep 3600"],
      "logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"/ecs/hello","awslogs-region":"us-east-1","awslogs-stream-prefix":"ecs"}}}]' > /dev/null
  PRIV=$(ec2 describe-network-interfaces --network-interface-ids "$ENI" --query 'NetworkInterfaces[0].SubnetId')
  TASK=$(aws --endpoint-url "$ENDPOINT" ecs run-task --cluster demo --launch-type FARGATE --task-definition hello \
         --network-configuration "awsvpcConfiguration={subnets=[$PRIV]}" --query 'tasks[0].taskArn' --output text)
  for _ in $(seq 100); do
    [[ $(aws --endpoint-url "$ENDPOINT" ecs describe-tasks --cluster demo --tasks "$TASK" \
         --query 'tasks[0].lastStatus' --output text) == RUNNING ]] && break
    sleep 0.2
  done
  run aws --endpoint-url "$ENDPOINT" ecs describe-tasks --cluster demo --tasks "$TASK" --output table \
    --query 'tasks[0].{task:taskArn,status:lastStatus,ip:containers[0].networkInterfaces[0].privateIpv4Address,runtimeId:containers[0].runtimeId}'
  sleep 1
  run /usr/bin/aws --endpoint-url "$ENDPOINT" logs tail /ecs/hello
fi
echo "A shell on that target, with the AWS CLI and pier's session-manager-plugin:"
echo "  aws --endpoint-url $ENDPOINT ssm start-session --target mi-0de000000000demo0"
echo "pierd is serving on $ENDPOINT (log: $HOME_DIR/pierd.log). Ctrl-C stops it."
wait $PIERD

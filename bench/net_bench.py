#!/usr/bin/env python3
"""VPC networking realized by the kernel, measured (needs root). A fresh
pierd; prints, in one run:
- the reference network (scenario.md: a VPC, a public subnet with an internet
  gateway and a NAT gateway, two private subnets, route tables, a security
  group, two task ENIs) from an empty host until every ENI and the NAT gateway
  are available — API calls included — and the same for 10 VPCs with 6
  subnets each (one ENI per subnet);
- a security-group change and a route change until the kernel has them.
Loopback and pier's own namespaces only; it stops what it starts, by pid, and
removes its kernel objects with `pier down`.
"""
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import boto3
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("PIER_BUILD_DIR", os.path.join(ROOT, "build")), "bin")


def wait(pred, timeout=60, step=0.005):
    deadline = time.time() + timeout
    while not pred():
        if time.time() > deadline:
            raise RuntimeError("timed out")
        time.sleep(step)


def netns_of(prefix):
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [l.split()[0] for l in out.splitlines() if l.startswith(prefix)]


def reference(ec2, base="10.0"):
    vpc = ec2.create_vpc(CidrBlock=base + ".0.0/16")["Vpc"]["VpcId"]
    pub = ec2.create_subnet(VpcId=vpc, CidrBlock=base + ".0.0/24")["Subnet"]["SubnetId"]
    a = ec2.create_subnet(VpcId=vpc, CidrBlock=base + ".1.0/24")["Subnet"]["SubnetId"]
    b = ec2.create_subnet(VpcId=vpc, CidrBlock=base + ".2.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=rt, SubnetId=pub)
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=pub, AllocationId=eip)["NatGateway"]["NatGatewayId"]
    prt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=prt, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    ec2.associate_route_table(RouteTableId=prt, SubnetId=a)
    sg = ec2.create_security_group(VpcId=vpc, GroupName="app", Description="app")["GroupId"]
    enis = [ec2.create_network_interface(SubnetId=s, Groups=[sg])["NetworkInterface"]["NetworkInterfaceId"]
            for s in (a, b)]
    return vpc, nat, enis, sg, prt


def main():
    if os.geteuid() != 0:
        raise SystemExit("net_bench: needs root")
    tmp = tempfile.mkdtemp(prefix="pier-net-bench-")
    home = os.path.join(tmp, "home")
    pierd = subprocess.Popen([os.path.join(BIN, "pierd"), "--listen", "127.0.0.1:0", "--home", home],
                             stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "pierd.log"), "wb"))
    try:
        endpoint = pierd.stdout.readline().decode().strip().split("ready on ")[1]
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                           aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}))
        ec2.describe_vpcs()  # the default VPC first, so that it is not measured
        wait(lambda: len(netns_of("pier-")) > 0)
        time.sleep(0.5)

        t0 = time.perf_counter()
        vpc, nat, enis, sg, prt = reference(ec2)
        api = time.perf_counter() - t0
        wait(lambda: all(e["Status"] == "available" for e in
                         ec2.describe_network_interfaces(NetworkInterfaceIds=enis)["NetworkInterfaces"]) and
             ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "available")
        ref = time.perf_counter() - t0

        # A security-group rule until it is in the ENI's ruleset.
        prefix = [n for n in netns_of("pier-") if n.endswith(enis[0])][0]
        sg_times, route_times = [], []
        for i in range(10):
            port = 9000 + i
            t0 = time.perf_counter()
            ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}])
            wait(lambda: ("dport %d" % port) in subprocess.run(
                ["ip", "netns", "exec", prefix, "nft", "list", "chain", "inet", "pier", "ingress"],
                capture_output=True, text=True).stdout, step=0.002)
            sg_times.append((time.perf_counter() - t0) * 1000)
        router = [n for n in netns_of("pier-") if n.endswith(vpc)][0]
        for i in range(10):
            dest = "192.0.2.%d/32" % (i + 1)
            t0 = time.perf_counter()
            ec2.create_route(RouteTableId=prt, DestinationCidrBlock=dest, NatGatewayId=nat)
            wait(lambda: dest.split("/")[0] in subprocess.run(["ip", "-n", router, "route", "show", "table", "all"],
                                                               capture_output=True, text=True).stdout, step=0.002)
            route_times.append((time.perf_counter() - t0) * 1000)

        # Ten VPCs of six subnets, an ENI in each.
        t0 = time.perf_counter()
        many = []
        for v in range(10):
            vid = ec2.create_vpc(CidrBlock="10.%d.0.0/16" % (100 + v))["Vpc"]["VpcId"]
            for s in range(6):
                sn = ec2.create_subnet(VpcId=vid, CidrBlock="10.%d.%d.0/24" % (100 + v, s))["Subnet"]["SubnetId"]
                many.append(ec2.create_network_interface(SubnetId=sn)["NetworkInterface"]["NetworkInterfaceId"])
        api_many = time.perf_counter() - t0
        wait(lambda: all(e["Status"] == "available" for e in
                         ec2.describe_network_interfaces(NetworkInterfaceIds=many)["NetworkInterfaces"]), timeout=300)
        big = time.perf_counter() - t0

        print("pier network benchmark (kernel namespaces, bridges, veths, nftables; 2-core VM)")
        print("reference network, empty host -> all ENIs and the NAT gateway available: %.0f ms"
              " (of which API calls %.0f ms) (goal <= 300 ms)" % (ref * 1000, api * 1000))
        print("security-group rule -> in the ENI's ruleset: p50 %.0f ms, max %.0f ms (goal <= 50 ms)"
              % (statistics.median(sg_times), max(sg_times)))
        print("route -> in the router's table: p50 %.0f ms, max %.0f ms (goal <= 50 ms)"
              % (statistics.median(route_times), max(route_times)))
        print("10 VPCs x 6 subnets, an ENI each (60 ENIs): %.0f ms until all available (API calls %.0f ms)"
              % (big * 1000, api_many * 1000))
    finally:
        pierd.terminate()
        pierd.wait(10)
        subprocess.run([os.path.join(BIN, "pier"), "down", "--all", "--home", home])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""VPC networking done by the kernel, first slice: VPCs, subnets and ENIs
built with the AWS CLI become namespaces, bridges and veths; `pier net exec`
probes from an ENI. Traffic goes only to addresses inside namespaces the
test made. Needs root."""
import json
import os
import subprocess
import time
import unittest

from pier_harness import AWS_V2, ENV, PIER, Pierd

PROBE = """
import socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("open", s.recv(100).decode())
except socket.timeout:
    print("timeout")
except OSError as e:
    print("error", e.errno)
"""
SERVE = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(4); print("ready", flush=True)
while True:
    c, a = s.accept(); c.sendall(("hello " + a[0]).encode()); c.close()
"""


def netns(prefix=""):
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return sorted(l.split()[0] for l in out.splitlines() if l.startswith(prefix))


@unittest.skipUnless(os.geteuid() == 0, "needs root (namespaces)")
class Network(unittest.TestCase):
    def setUp(self):
        self.pierd = Pierd().start()
        self.addCleanup(lambda: self.pierd.cleanup())
        self.prefix = None

    def aws(self, *args):
        p = subprocess.run([AWS_V2, "--endpoint-url", self.pierd.endpoint, "--output", "json"] + list(args),
                           env=ENV, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout) if p.stdout.strip() else {}

    def vpc(self, cidr, subnets):
        v = self.aws("ec2", "create-vpc", "--cidr-block", cidr)["Vpc"]["VpcId"]
        return v, [self.aws("ec2", "create-subnet", "--vpc-id", v, "--cidr-block", c)["Subnet"]["SubnetId"]
                   for c in subnets]

    def eni(self, subnet):
        e = self.aws("ec2", "create-network-interface", "--subnet-id", subnet)["NetworkInterface"]
        self.assertEqual(e["Status"], "pending")
        deadline = time.time() + 20
        while time.time() < deadline:
            got = self.aws("ec2", "describe-network-interfaces", "--network-interface-ids",
                           e["NetworkInterfaceId"])["NetworkInterfaces"][0]
            if got["Status"] == "available":
                return got
            time.sleep(0.1)
        self.fail("ENI %s never became available" % e["NetworkInterfaceId"])

    def in_eni(self, eni, *cmd, **kw):
        return subprocess.run([PIER, "--endpoint", self.pierd.endpoint, "net", "exec", eni, "--"] + list(cmd),
                              env=ENV, capture_output=True, text=True, timeout=30, **kw)

    def serve(self, eni, port):
        p = subprocess.Popen([PIER, "--endpoint", self.pierd.endpoint, "net", "exec", eni, "--", "python3", "-c",
                              SERVE, str(port)], env=ENV, stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.kill(), p.wait(), p.stdout.close()))
        self.assertEqual(p.stdout.readline().strip(), "ready")

    def probe(self, eni, ip, port):
        return self.in_eni(eni, "python3", "-c", PROBE, ip, str(port)).stdout.strip()

    def test_subnets_route_vpcs_stay_apart_and_the_kernel_follows_the_store(self):
        va, (a1, a2) = self.vpc("10.0.0.0/16", ["10.0.1.0/24", "10.0.2.0/24"])
        e1, e2 = self.eni(a1), self.eni(a2)
        self.assertEqual((e1["PrivateIpAddress"], e2["PrivateIpAddress"]), ("10.0.1.4", "10.0.2.4"))
        addr = self.in_eni(e1["NetworkInterfaceId"], "ip", "-4", "-o", "addr", "show", "pier-eth0").stdout
        self.assertIn("10.0.1.4/24", addr)
        link = self.in_eni(e1["NetworkInterfaceId"], "ip", "-o", "link", "show", "pier-eth0").stdout
        self.assertIn(e1["MacAddress"], link)

        # The `local` route: subnet to subnet through the VPC router.
        self.serve(e2["NetworkInterfaceId"], 8080)
        self.assertEqual(self.probe(e1["NetworkInterfaceId"], "10.0.2.4", 8080), "open hello 10.0.1.4")

        # A second VPC with the same CIDR, and an ENI with the same address: no path to the first.
        vb, (b1,) = self.vpc("10.0.0.0/16", ["10.0.1.0/24"])
        e3 = self.eni(b1)
        self.assertEqual(e3["PrivateIpAddress"], "10.0.1.4")
        self.assertIn(self.probe(e3["NetworkInterfaceId"], "10.0.2.4", 8080).split()[0], ("error", "timeout"))
        # No route anywhere but the VPC: asked of the routers, not by sending traffic.
        routers = [n for n in netns("pier-") if n.endswith(va) or n.endswith(vb)]
        self.assertEqual(len(routers), 2)
        for r in routers:
            p = subprocess.run(["ip", "-n", r, "route", "get", "1.1.1.1"], capture_output=True, text=True)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("unreachable", p.stderr)
        self.prefix = routers[0][:len("pier-0000-")]

        # kill -9 and back: the same namespaces and links, nothing twice.
        def snapshot():
            return {n: subprocess.run(["ip", "-n", n, "-o", "link"], capture_output=True, text=True).stdout
                    .count("pier-") for n in netns(self.prefix)}
        before = snapshot()
        self.pierd.kill9()
        home = self.pierd.home
        restarted = Pierd(home=home)
        restarted.tmp, self.pierd.tmp = self.pierd.tmp, None
        self.pierd = restarted.start()
        self.aws("ec2", "describe-vpcs")
        time.sleep(1)
        self.assertEqual(snapshot(), before)
        self.assertEqual(self.probe(e1["NetworkInterfaceId"], "10.0.2.4", 8080), "open hello 10.0.1.4")

        # Deleting an ENI removes its namespace.
        self.aws("ec2", "delete-network-interface", "--network-interface-id", e3["NetworkInterfaceId"])
        deadline = time.time() + 10
        while any(n.endswith(e3["NetworkInterfaceId"]) for n in netns(self.prefix)) and time.time() < deadline:
            time.sleep(0.1)
        self.assertFalse(any(n.endswith(e3["NetworkInterfaceId"]) for n in netns(self.prefix)))

    def eventually(self, fn, want, timeout=10):
        deadline = time.time() + timeout
        got = fn()
        while got != want and time.time() < deadline:
            time.sleep(0.2)
            got = fn()
        self.assertEqual(got, want)

    def test_security_groups_decide_the_next_connection(self):
        vid, (s1, s2) = self.vpc("10.0.0.0/16", ["10.0.1.0/24", "10.0.2.0/24"])
        web = self.aws("ec2", "create-security-group", "--vpc-id", vid, "--group-name", "web",
                       "--description", "web")["GroupId"]
        client = self.aws("ec2", "create-security-group", "--vpc-id", vid, "--group-name", "client",
                          "--description", "client")["GroupId"]
        other = self.aws("ec2", "create-security-group", "--vpc-id", vid, "--group-name", "other",
                         "--description", "other")["GroupId"]

        def eni(subnet, group):
            e = self.aws("ec2", "create-network-interface", "--subnet-id", subnet, "--groups", group)
            eid = e["NetworkInterface"]["NetworkInterfaceId"]
            self.eventually(lambda: self.aws("ec2", "describe-network-interfaces", "--network-interface-ids", eid)
                            ["NetworkInterfaces"][0]["Status"], "available")
            return eid
        server, c1, c2 = eni(s2, web), eni(s1, client), eni(s1, other)
        self.serve(server, 8443)
        # No ingress rule: nothing gets in (dropped, so the client times out).
        self.assertEqual(self.probe(c1, "10.0.2.4", 8443), "timeout")

        # From the client group's members only.
        self.aws("ec2", "authorize-security-group-ingress", "--group-id", web, "--ip-permissions", json.dumps(
            [{"IpProtocol": "tcp", "FromPort": 8443, "ToPort": 8443, "UserIdGroupPairs": [{"GroupId": client}]}]))
        self.eventually(lambda: self.probe(c1, "10.0.2.4", 8443), "open hello 10.0.1.4")
        self.assertEqual(self.probe(c2, "10.0.2.4", 8443), "timeout")

        # A CIDR rule admits the other one too; revoking both shuts the door again.
        self.aws("ec2", "authorize-security-group-ingress", "--group-id", web, "--protocol", "tcp", "--port", "8443",
                 "--cidr", "10.0.1.5/32")
        self.eventually(lambda: self.probe(c2, "10.0.2.4", 8443), "open hello 10.0.1.5")
        rules = self.aws("ec2", "describe-security-group-rules", "--filters", "Name=group-id,Values=" + web)
        ingress = [r["SecurityGroupRuleId"] for r in rules["SecurityGroupRules"] if not r["IsEgress"]]
        self.aws("ec2", "revoke-security-group-ingress", "--group-id", web, "--security-group-rule-ids", *ingress)
        self.eventually(lambda: self.probe(c1, "10.0.2.4", 8443), "timeout")

        # Egress: without its rule the client cannot even start a connection.
        self.aws("ec2", "authorize-security-group-ingress", "--group-id", web, "--protocol", "tcp", "--port", "8443",
                 "--cidr", "10.0.0.0/16")
        self.eventually(lambda: self.probe(c1, "10.0.2.4", 8443), "open hello 10.0.1.4")
        out = [r["SecurityGroupRuleId"] for r in self.aws("ec2", "describe-security-group-rules", "--filters",
               "Name=group-id,Values=" + client)["SecurityGroupRules"] if r["IsEgress"]]
        self.aws("ec2", "revoke-security-group-egress", "--group-id", client, "--security-group-rule-ids", *out)
        # (a local packet dropped on its way out fails connect() at once: EPERM)
        self.eventually(lambda: self.probe(c1, "10.0.2.4", 8443).split()[0] in ("timeout", "error"), True)
        # The drops are counted where they happen, in the ENI's own namespace.
        p = self.in_eni(c1, "nft", "list", "chain", "inet", "pier", "egress")
        self.assertRegex(p.stdout, r"counter packets [1-9]")

    def test_nat_gateway_and_internet_gateway_paths(self):
        # The scenario's shape: a public subnet (internet gateway, NAT
        # gateway), a private one routed to the NAT, one with no way out.
        vid, (pub, priv, iso) = self.vpc("10.0.0.0/16", ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"])
        igw = self.aws("ec2", "create-internet-gateway")["InternetGateway"]["InternetGatewayId"]
        self.aws("ec2", "attach-internet-gateway", "--internet-gateway-id", igw, "--vpc-id", vid)
        public_rt = self.aws("ec2", "create-route-table", "--vpc-id", vid)["RouteTable"]["RouteTableId"]
        self.aws("ec2", "create-route", "--route-table-id", public_rt, "--destination-cidr-block", "0.0.0.0/0",
                 "--gateway-id", igw)
        self.aws("ec2", "associate-route-table", "--route-table-id", public_rt, "--subnet-id", pub)
        eip = self.aws("ec2", "allocate-address", "--domain", "vpc")
        self.assertTrue(eip["PublicIp"].startswith("198.19."))
        nat = self.aws("ec2", "create-nat-gateway", "--subnet-id", pub, "--allocation-id",
                       eip["AllocationId"])["NatGateway"]
        self.assertEqual(nat["State"], "pending")
        nid = nat["NatGatewayId"]
        self.eventually(lambda: self.aws("ec2", "describe-nat-gateways", "--nat-gateway-ids", nid)
                        ["NatGateways"][0]["State"], "available")
        private_rt = self.aws("ec2", "create-route-table", "--vpc-id", vid)["RouteTable"]["RouteTableId"]
        self.aws("ec2", "create-route", "--route-table-id", private_rt, "--destination-cidr-block", "0.0.0.0/0",
                 "--nat-gateway-id", nid)
        assoc = self.aws("ec2", "associate-route-table", "--route-table-id", private_rt,
                         "--subnet-id", priv)["AssociationId"]
        e_priv = self.eni(priv)["NetworkInterfaceId"]
        e_iso = self.eni(iso)["NetworkInterfaceId"]

        # A public service address in the internet namespace (pierd will
        # serve the AWS endpoints there; here a server of the test's own).
        inet = [n for n in netns("pier-") if n.endswith("-inet") and n in netns_of(self.pierd)]
        self.assertEqual(len(inet), 1)
        p = subprocess.Popen(["ip", "netns", "exec", inet[0], "python3", "-c", SERVE.replace('"0.0.0.0"', '"198.18.0.10"'),
                              "443"], stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.kill(), p.wait(), p.stdout.close()))
        self.assertEqual(p.stdout.readline().strip(), "ready")

        # Through the NAT gateway: the service sees the NAT's public address.
        self.eventually(lambda: self.probe(e_priv, "198.18.0.10", 443), "open hello " + eip["PublicIp"])
        # No route out: nothing.
        self.assertNotEqual(self.probe(e_iso, "198.18.0.10", 443).split()[0], "open")
        # The internet namespace has no route anywhere but back to its public addresses.
        r = subprocess.run(["ip", "-n", inet[0], "route", "get", "1.1.1.1"], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)

        # Deleting the NAT route takes effect on the next connection; putting it back restores it.
        self.aws("ec2", "delete-route", "--route-table-id", private_rt, "--destination-cidr-block", "0.0.0.0/0")
        self.eventually(lambda: self.probe(e_priv, "198.18.0.10", 443).split()[0] != "open", True)
        self.aws("ec2", "create-route", "--route-table-id", private_rt, "--destination-cidr-block", "0.0.0.0/0",
                 "--nat-gateway-id", nid)
        self.eventually(lambda: self.probe(e_priv, "198.18.0.10", 443), "open hello " + eip["PublicIp"])
        # Without its association the subnet falls back to the main table: no way out.
        self.aws("ec2", "disassociate-route-table", "--association-id", assoc)
        self.eventually(lambda: self.probe(e_priv, "198.18.0.10", 443).split()[0] != "open", True)

        # The NAT gateway goes: deleting, then deleted; its ENI and namespace with it, the EIP stays.
        self.aws("ec2", "delete-nat-gateway", "--nat-gateway-id", nid)
        self.eventually(lambda: self.aws("ec2", "describe-nat-gateways", "--nat-gateway-ids", nid)
                        ["NatGateways"][0]["State"], "deleted")
        nat_eni = nat["NatGatewayAddresses"][0]["NetworkInterfaceId"]
        self.eventually(lambda: any(n.endswith(nat_eni) for n in netns("pier-")), False)
        addr = self.aws("ec2", "describe-addresses", "--allocation-ids", eip["AllocationId"])["Addresses"][0]
        self.assertNotIn("AssociationId", addr)
        self.aws("ec2", "release-address", "--allocation-id", eip["AllocationId"])

    def test_down_removes_one_instance_and_nothing_of_another(self):
        other = Pierd().start()
        self.addCleanup(other.cleanup)
        _, (s,) = self.vpc("10.0.0.0/16", ["10.0.1.0/24"])
        self.eni(s)
        p = subprocess.run([AWS_V2, "--endpoint-url", other.endpoint, "ec2", "create-vpc", "--cidr-block",
                            "10.5.0.0/16"], env=ENV, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        time.sleep(1)
        mine, theirs = netns_of(self.pierd), netns_of(other)
        self.assertEqual(len([n for n in mine if "-eni-" in n]), 1)
        self.assertTrue(theirs)
        self.assertFalse(set(mine) & set(theirs))
        self.pierd.kill9()  # down works with pierd dead, too
        subprocess.run([PIER, "down", "--all", "--home", self.pierd.home], check=True)
        self.assertEqual(netns_of(self.pierd), [])
        self.assertEqual(netns_of(other), theirs)


def netns_of(pierd):
    """The namespaces of one pierd: those its tag prefixes (read from its log)."""
    for line in pierd.log_text().splitlines():
        if "network controller on (namespaces " in line:
            prefix = line.split("(namespaces ")[1].split("…")[0]
            return netns(prefix)
    return []


if __name__ == "__main__":
    unittest.main()

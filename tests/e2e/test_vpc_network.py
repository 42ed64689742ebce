"""VPC networking done by the kernel: VPCs, subnets and ENIs built with the
AWS CLI become namespaces, bridges and veths; route tables, internet and NAT
gateways, security groups, the VPC resolver, interface endpoints on 443 with
pier's CA, the public endpoints in the simulated internet and the link-local
path to 169.254.170.2. `pier net exec` probes from an ENI. Traffic goes only to
addresses inside namespaces the test made (pierd's). Needs root."""
import json
import os
import re
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
# Resolve a name with the ENI's resolv.conf (pier net exec points it at the
# VPC's resolver), connect, and speak TLS with pier's CA.
TLS_PROBE = """
import socket, ssl, sys
host, port, ca, sni = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
try:
    addr = socket.gethostbyname(host)
except OSError:
    print("nxdomain"); sys.exit()
s = socket.socket(); s.settimeout(3)
try:
    s.connect((addr, port))
    t = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname=sni)
    t.sendall(b"GET / HTTP/1.1\\r\\nHost: " + sni.encode() + b"\\r\\nConnection: close\\r\\n\\r\\n")
    print("tls", addr, t.recv(12).decode())
except socket.timeout:
    print("timeout", addr)
except ssl.SSLError as e:
    print("sslerror", addr, e.reason)
except OSError as e:
    print("error", addr, e.errno)
"""
RESOLVE = """
import socket, sys
try:
    print(" ".join(sorted(socket.gethostbyname_ex(sys.argv[1])[2])))
except OSError:
    print("nxdomain")
"""
SSMMESSAGES = "ssmmessages.us-east-1.amazonaws.com"
SSMMESSAGES_PUBLIC = "198.18.0.11"  # us-east-1 is region 0; ssmmessages is service 1 (aws/endpoints.cc)

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

    def tls(self, eni, host=SSMMESSAGES, sni=SSMMESSAGES):
        ca = os.path.join(self.pierd.home, "ca", "ca.pem")
        return self.in_eni(eni, "python3", "-c", TLS_PROBE, host, "443", ca, sni).stdout.strip()

    def resolve(self, eni, name=SSMMESSAGES):
        return self.in_eni(eni, "python3", "-c", RESOLVE, name).stdout.strip()

    def access_log(self):
        path = os.path.join(self.pierd.home, "endpoint-access.log")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]

    def wait_for(self, describe, key, ident, state, timeout=20):
        self.eventually(lambda: self.aws("ec2", describe, "--" + key + "-ids", ident)
                        [{"nat-gateway": "NatGateways", "vpc-endpoint": "VpcEndpoints"}[key]][0]["State"],
                        state, timeout)

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
            # Namespaces, their links and their rulesets (counters aside), and what pierd listens on there.
            def ns_state(n):
                links = subprocess.run(["ip", "-n", n, "-o", "link"], capture_output=True, text=True).stdout
                rules = subprocess.run(["ip", "netns", "exec", n, "nft", "list", "ruleset"], capture_output=True,
                                       text=True).stdout
                listening = subprocess.run(["ip", "netns", "exec", n, "ss", "-Hltun"], capture_output=True,
                                           text=True).stdout
                return (sorted(l.split(":")[1].strip().split("@")[0] for l in links.splitlines()),
                        re.sub(r"counter packets \d+ bytes \d+", "counter", rules),
                        sorted(" ".join(l.split()[4:5]) for l in listening.splitlines()))
            return {n: ns_state(n) for n in netns(self.prefix)}
        before = snapshot()
        self.pierd.kill9()
        home = self.pierd.home
        restarted = Pierd(home=home)
        restarted.tmp, self.pierd.tmp = self.pierd.tmp, None
        self.pierd = restarted.start()
        self.aws("ec2", "describe-vpcs")
        # (the restarted pierd's listeners come with its first pass; nothing else may change)
        self.eventually(snapshot, before)
        time.sleep(1)
        self.assertEqual(snapshot(), before)
        self.assertEqual(self.probe(e1["NetworkInterfaceId"], "10.0.2.4", 8080), "open hello 10.0.1.4")
        # pierd answers inside the namespaces again: the resolver, 169.254.170.2.
        self.assertEqual(self.resolve(e1["NetworkInterfaceId"]), SSMMESSAGES_PUBLIC)

        # Deleting an ENI removes its namespace.
        self.aws("ec2", "delete-network-interface", "--network-interface-id", e3["NetworkInterfaceId"])
        deadline = time.time() + 30
        while any(n.endswith(e3["NetworkInterfaceId"]) for n in netns(self.prefix)) and time.time() < deadline:
            time.sleep(0.1)
        self.assertFalse(any(n.endswith(e3["NetworkInterfaceId"]) for n in netns(self.prefix)))

    def eventually(self, fn, want, timeout=30):
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

        inet = [n for n in netns("pier-") if n.endswith("-inet") and n in netns_of(self.pierd)]
        self.assertEqual(len(inet), 1)

        # The VPC has no endpoints: the service's name is its public address,
        # from every subnet, and pierd answers there with pier's CA.
        self.assertEqual(self.resolve(e_priv), SSMMESSAGES_PUBLIC)
        self.assertEqual(self.resolve(e_iso), SSMMESSAGES_PUBLIC)
        # Through the NAT gateway: the endpoint sees the NAT's public address.
        self.eventually_value(lambda: self.tls(e_priv), lambda v: v.startswith("tls %s HTTP/1.1" % SSMMESSAGES_PUBLIC))
        seen = [l for l in self.access_log() if l["local"] == SSMMESSAGES_PUBLIC]
        self.assertTrue(seen)
        self.assertEqual(seen[-1]["source"], eip["PublicIp"])
        self.assertEqual(seen[-1]["owner"], "internet")
        # No route out: nothing.
        self.assertEqual(self.tls(e_iso).split()[0], "error")
        # The internet namespace has no route anywhere but back to its public addresses.
        r = subprocess.run(["ip", "-n", inet[0], "route", "get", "1.1.1.1"], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)

        # Deleting the NAT route takes effect on the next connection; putting it back restores it.
        self.aws("ec2", "delete-route", "--route-table-id", private_rt, "--destination-cidr-block", "0.0.0.0/0")
        self.eventually(lambda: self.tls(e_priv).split()[0] != "tls", True)
        self.aws("ec2", "create-route", "--route-table-id", private_rt, "--destination-cidr-block", "0.0.0.0/0",
                 "--nat-gateway-id", nid)
        self.eventually(lambda: self.tls(e_priv).split()[0], "tls")
        # Without its association the subnet falls back to the main table: no way out.
        self.aws("ec2", "disassociate-route-table", "--association-id", assoc)
        self.eventually(lambda: self.tls(e_priv).split()[0] != "tls", True)

        # The NAT gateway goes: deleting, then deleted; its ENI and namespace with it, the EIP stays.
        self.aws("ec2", "delete-nat-gateway", "--nat-gateway-id", nid)
        self.eventually(lambda: self.aws("ec2", "describe-nat-gateways", "--nat-gateway-ids", nid)
                        ["NatGateways"][0]["State"], "deleted")
        nat_eni = nat["NatGatewayAddresses"][0]["NetworkInterfaceId"]
        self.eventually(lambda: any(n.endswith(nat_eni) for n in netns("pier-")), False)
        addr = self.aws("ec2", "describe-addresses", "--allocation-ids", eip["AllocationId"])["Addresses"][0]
        self.assertNotIn("AssociationId", addr)
        self.aws("ec2", "release-address", "--allocation-id", eip["AllocationId"])

    def test_interface_endpoints_private_dns_and_their_security_groups(self):
        # The scenario's endpoint VPC: no way out, the endpoints with private
        # DNS, which AWS allows only with DNS hostnames on.
        vid, _ = self.vpc("10.1.0.0/16", [])
        s1, s2 = [self.aws("ec2", "create-subnet", "--vpc-id", vid, "--cidr-block", c, "--availability-zone", z)
                  ["Subnet"]["SubnetId"] for c, z in (("10.1.1.0/24", "us-east-1a"), ("10.1.2.0/24", "us-east-1b"))]
        self.aws("ec2", "modify-vpc-attribute", "--vpc-id", vid, "--enable-dns-hostnames", '{"Value": true}')
        containers = self.aws("ec2", "create-security-group", "--vpc-id", vid, "--group-name", "containers",
                              "--description", "tasks")["GroupId"]
        endpoint_sg = self.aws("ec2", "create-security-group", "--vpc-id", vid, "--group-name", "endpoints",
                               "--description", "endpoints")["GroupId"]
        self.aws("ec2", "authorize-security-group-ingress", "--group-id", endpoint_sg, "--ip-permissions", json.dumps(
            [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": containers}]}]))
        ep = self.aws("ec2", "create-vpc-endpoint", "--vpc-id", vid, "--vpc-endpoint-type", "Interface",
                      "--service-name", "com.amazonaws.us-east-1.ssmmessages", "--subnet-ids", s1, s2,
                      "--security-group-ids", endpoint_sg, "--private-dns-enabled")["VpcEndpoint"]
        eid = ep["VpcEndpointId"]
        self.wait_for("describe-vpc-endpoints", "vpc-endpoint", eid, "available")
        enis = self.aws("ec2", "describe-network-interfaces", "--network-interface-ids", *ep["NetworkInterfaceIds"])
        endpoint_ips = " ".join(sorted(e["PrivateIpAddress"] for e in enis["NetworkInterfaces"]))

        def eni(subnet, group):
            e = self.aws("ec2", "create-network-interface", "--subnet-id", subnet, "--groups", group)
            i = e["NetworkInterface"]["NetworkInterfaceId"]
            self.eventually(lambda: self.aws("ec2", "describe-network-interfaces", "--network-interface-ids", i)
                            ["NetworkInterfaces"][0]["Status"], "available")
            return i, e["NetworkInterface"]["PrivateIpAddress"]
        (c1, c1_ip), (c2, _) = eni(s1, containers), eni(s2, containers)
        default_sg = self.aws("ec2", "describe-security-groups", "--filters", "Name=vpc-id,Values=" + vid,
                              "Name=group-name,Values=default")["SecurityGroups"][0]["GroupId"]
        outsider, _ = eni(s1, default_sg)

        # Private DNS is VPC-wide: from every subnet the name is the endpoint's ENIs.
        for e in (c1, c2, outsider):
            self.assertEqual(self.resolve(e), endpoint_ips)
        # The endpoint's own name, and the zonal one.
        regional = ep["DnsEntries"][0]["DnsName"]
        self.assertEqual(self.resolve(c1, regional), endpoint_ips)
        # DNS hostnames on: ip-A-B-C-D.ec2.internal.
        self.assertEqual(self.resolve(c1, "ip-%s.ec2.internal" % c1_ip.replace(".", "-")), c1_ip)
        self.assertEqual(self.resolve(c1, "nothing.example.com"), "nxdomain")

        # 443 answers, with a certificate for the name signed by pier's CA …
        got = self.eventually_value(lambda: self.tls(c1), lambda v: v.startswith("tls"))
        self.assertIn(got.split()[1], endpoint_ips.split())
        self.assertTrue(self.tls(c2).startswith("tls"))
        # … for members of the containers group only: the endpoint's group drops the rest.
        self.assertEqual(self.tls(outsider).split()[0], "timeout")
        # The access log names the ENI that connected, by its VPC address.
        self.assertIn(c1_ip, [l["source"] for l in self.access_log() if l["owner"] == eid])

        # 169.254.170.2 from every ENI, independent of routes; pierd tells ENIs apart by the path.
        fetch = ("import urllib.request; print(urllib.request.urlopen("
                 "'http://169.254.170.2/_pier/eni', timeout=3).read().decode())")
        self.assertEqual(json.loads(self.in_eni(c1, "python3", "-c", fetch).stdout)["NetworkInterfaceId"], c1)
        self.assertEqual(json.loads(self.in_eni(c2, "python3", "-c", fetch).stdout)["NetworkInterfaceId"], c2)

        # Revoking the endpoint's rule: the next connection gets nowhere.
        rules = self.aws("ec2", "describe-security-group-rules", "--filters", "Name=group-id,Values=" + endpoint_sg)
        ingress = [r["SecurityGroupRuleId"] for r in rules["SecurityGroupRules"] if not r["IsEgress"]]
        self.aws("ec2", "revoke-security-group-ingress", "--group-id", endpoint_sg, "--security-group-rule-ids", *ingress)
        self.eventually(lambda: self.tls(c1).split()[0], "timeout")

        # Deleting the endpoint: the name is the public address again, which this VPC cannot reach.
        self.aws("ec2", "delete-vpc-endpoints", "--vpc-endpoint-ids", eid)
        self.eventually(lambda: self.resolve(c1), SSMMESSAGES_PUBLIC)
        self.eventually(lambda: self.aws("ec2", "describe-network-interfaces", "--filters",
                                         "Name=vpc-id,Values=" + vid)["NetworkInterfaces"].__len__(), 3)
        self.assertEqual(self.tls(c1).split()[0], "error")

        # DNS support off: no resolver at all.
        self.aws("ec2", "modify-vpc-attribute", "--vpc-id", vid, "--enable-dns-hostnames", '{"Value": false}')
        self.aws("ec2", "modify-vpc-attribute", "--vpc-id", vid, "--enable-dns-support", '{"Value": false}')
        self.eventually(lambda: self.resolve(c1), "nxdomain")

    def test_gateway_endpoint_routes_its_tables_subnets_only(self):
        # No way out of this VPC but an S3 gateway endpoint on one subnet's table.
        vid, (routed, other) = self.vpc("10.2.0.0/16", ["10.2.1.0/24", "10.2.2.0/24"])
        rt = self.aws("ec2", "create-route-table", "--vpc-id", vid)["RouteTable"]["RouteTableId"]
        self.aws("ec2", "associate-route-table", "--route-table-id", rt, "--subnet-id", routed)
        ep = self.aws("ec2", "create-vpc-endpoint", "--vpc-id", vid, "--vpc-endpoint-type", "Gateway",
                      "--service-name", "com.amazonaws.us-east-1.s3", "--route-table-ids", rt)["VpcEndpoint"]
        e_routed, e_other = self.eni(routed), self.eni(other)
        s3 = "s3.us-east-1.amazonaws.com"
        public = self.resolve(e_routed["NetworkInterfaceId"], s3)
        self.assertTrue(public.startswith("198.18.0."), public)
        # The table's subnet reaches S3's public address, with its own address as the source …
        self.eventually_value(lambda: self.tls(e_routed["NetworkInterfaceId"], s3, s3),
                              lambda v: v.startswith("tls " + public))
        seen = [l for l in self.access_log() if l["owner"] == ep["VpcEndpointId"]]
        self.assertEqual(seen[-1]["source"], e_routed["PrivateIpAddress"])
        # … a bucket's name too (the certificate has *.s3…); the other subnet has no route there.
        bucket = "my-bucket.s3.us-east-1.amazonaws.com"
        self.assertTrue(self.tls(e_routed["NetworkInterfaceId"], bucket, bucket).startswith("tls " + public))
        self.assertEqual(self.tls(e_other["NetworkInterfaceId"], s3, s3).split()[0], "error")
        # The endpoint gone, so is the path.
        self.aws("ec2", "delete-vpc-endpoints", "--vpc-endpoint-ids", ep["VpcEndpointId"])
        self.eventually(lambda: self.tls(e_routed["NetworkInterfaceId"], s3, s3).split()[0], "error")

    def eventually_value(self, fn, ok, timeout=30):
        deadline = time.time() + timeout
        got = fn()
        while not ok(got) and time.time() < deadline:
            time.sleep(0.2)
            got = fn()
        self.assertTrue(ok(got), got)
        return got

    def test_down_removes_one_instance_and_nothing_of_another(self):
        other = Pierd().start()
        self.addCleanup(other.cleanup)
        _, (s,) = self.vpc("10.0.0.0/16", ["10.0.1.0/24"])
        self.eni(s)
        p = subprocess.run([AWS_V2, "--endpoint-url", other.endpoint, "--output", "json", "ec2", "create-vpc",
                            "--cidr-block", "10.5.0.0/16"], env=ENV, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        vpc_id = json.loads(p.stdout)["Vpc"]["VpcId"]
        # The other pierd's controller builds its namespaces after the call
        # returns: wait until the new VPC's is there and a second read a
        # second later agrees.
        def settled():
            first = netns_of(other)
            time.sleep(1)
            return netns_of(other) if netns_of(other) == first else None
        theirs = self.eventually_value(settled, lambda ns: ns and any(n.endswith(vpc_id) for n in ns), timeout=30)
        mine = netns_of(self.pierd)
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

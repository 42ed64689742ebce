"""VPC endpoints with boto3 — every response checked against the botocore
output shape — and the AWS CLI v2: Interface endpoints and their
requester-managed ENIs, DNS entries, private DNS and its checks, ClientToken,
ModifyVpcEndpoint, Gateway endpoints and their prefix-list routes,
DescribeVpcEndpointServices, DescribePrefixLists, DeleteVpcEndpoints and the
dependencies an endpoint holds. Bad input gets AWS's codes and changes
nothing."""
import os
import time
import unittest

from botocore.exceptions import ClientError

from pier_harness import PierTestCase

FULL_ACCESS = '{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}'
SSM = "com.amazonaws.us-east-1.ssm"
S3 = "com.amazonaws.us-east-1.s3"
MISSING_VPCE = "vpce-0123456789abcdef0"
ROOT = os.geteuid() == 0


class EndpointTest(PierTestCase):
    def setUp(self):
        super().setUp()
        self.ec2 = self.checked("ec2")

    def network(self, hostnames=False):
        """A VPC with subnets a (us-east-1a), b (us-east-1b) and a2 (us-east-1a)."""
        vid = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        if hostnames:
            self.ec2.modify_vpc_attribute(VpcId=vid, EnableDnsHostnames={"Value": True})
        sn = {}
        for name, cidr, az in [("a", "10.0.1.0/24", "us-east-1a"), ("b", "10.0.2.0/24", "us-east-1b"),
                               ("a2", "10.0.3.0/24", "us-east-1a")]:
            sn[name] = self.ec2.create_subnet(VpcId=vid, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]["SubnetId"]
        return vid, sn

    def interface(self, vid, subnets, **kw):
        return self.ec2.create_vpc_endpoint(VpcId=vid, ServiceName=kw.pop("ServiceName", SSM), SubnetIds=subnets,
                                            **kw)["VpcEndpoint"]

    def endpoint(self, eid):
        return self.ec2.describe_vpc_endpoints(VpcEndpointIds=[eid])["VpcEndpoints"][0]

    def state(self):
        """Everything a test could see, to prove a refused call changed nothing
        (but the states the network controller moves on by itself)."""
        endpoints = self.ec2.describe_vpc_endpoints()["VpcEndpoints"]
        enis = self.ec2.describe_network_interfaces()["NetworkInterfaces"]
        for x in endpoints:
            x.pop("State")
        for x in enis:
            x.pop("Status")
        return (endpoints, enis,
                self.ec2.describe_subnets()["Subnets"], self.ec2.describe_route_tables()["RouteTables"],
                self.ec2.describe_security_groups()["SecurityGroups"], self.ec2.describe_tags()["Tags"])

    def wait_for(self, what, fn, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if fn():
                return
            time.sleep(0.2)
        self.fail("timed out waiting for " + what)


class InterfaceEndpoints(EndpointTest):
    def test_endpoint_in_two_zones(self):
        vid, sn = self.network(hostnames=True)
        sg = self.ec2.create_security_group(VpcId=vid, GroupName="app", Description="app")["GroupId"]
        ep = self.interface(vid, [sn["a"], sn["b"]], SecurityGroupIds=[sg], TagSpecifications=[
            {"ResourceType": "vpc-endpoint", "Tags": [{"Key": "Name", "Value": "ssm"}]}])
        eid = ep["VpcEndpointId"]
        self.assertRegex(eid, r"^vpce-[0-9a-f]{17}$")
        self.assertEqual((ep["VpcEndpointType"], ep["VpcId"], ep["ServiceName"], ep["State"], ep["SubnetIds"],
                          ep["Groups"], ep["PrivateDnsEnabled"], ep["RequesterManaged"], ep["RouteTableIds"],
                          ep["IpAddressType"], ep["DnsOptions"], ep["PolicyDocument"], ep["Tags"]),
                         ("Interface", vid, SSM, "pending", [sn["a"], sn["b"]], [{"GroupId": sg, "GroupName": "app"}],
                          True, False, [], "ipv4", {"DnsRecordIpType": "ipv4"}, FULL_ACCESS,
                          [{"Key": "Name", "Value": "ssm"}]))
        self.assertEqual(ep["OwnerId"], "000000000000")
        # DNS: the regional name, one per zone (the same random suffix), then the private name.
        names = [d["DnsName"] for d in ep["DnsEntries"]]
        self.assertEqual(len(names), 4)
        self.assertRegex(names[0], r"^%s-[a-z0-9]{8}\.ssm\.us-east-1\.vpce\.amazonaws\.com$" % eid)
        suffix = names[0].split(".")[0][len(eid) + 1:]
        self.assertEqual(names[1:], ["%s-%s-us-east-1a.ssm.us-east-1.vpce.amazonaws.com" % (eid, suffix),
                                     "%s-%s-us-east-1b.ssm.us-east-1.vpce.amazonaws.com" % (eid, suffix),
                                     "ssm.us-east-1.amazonaws.com"])
        for d in ep["DnsEntries"]:
            self.assertRegex(d["HostedZoneId"], r"^Z[A-Z0-9]{12,}$")

        # One requester-managed ENI per subnet, in the endpoint's groups.
        self.assertEqual(len(ep["NetworkInterfaceIds"]), 2)
        enis = self.ec2.describe_network_interfaces(NetworkInterfaceIds=ep["NetworkInterfaceIds"])["NetworkInterfaces"]
        by_subnet = {e["SubnetId"]: e for e in enis}
        self.assertEqual(sorted(by_subnet), sorted([sn["a"], sn["b"]]))
        for e in enis:
            self.assertEqual((e["InterfaceType"], e["RequesterManaged"], e["Groups"], e["Description"], e["VpcId"]),
                             ("vpc_endpoint", True, [{"GroupId": sg, "GroupName": "app"}],
                              "VPC Endpoint Interface " + eid, vid))
        self.assertEqual((by_subnet[sn["a"]]["PrivateIpAddress"], by_subnet[sn["b"]]["PrivateIpAddress"]),
                         ("10.0.1.4", "10.0.2.4"))
        self.assertEqual(by_subnet[sn["b"]]["AvailabilityZone"], "us-east-1b")
        managed = self.ec2.describe_network_interfaces(Filters=[{"Name": "requester-managed", "Values": ["true"]},
                                                                {"Name": "vpc-id", "Values": [vid]}])
        self.assertEqual(len(managed["NetworkInterfaces"]), 2)
        self.assertEqual(self.ec2.describe_subnets(SubnetIds=[sn["a"]])["Subnets"][0]["AvailableIpAddressCount"], 250)

        # Describe: ids and filters.
        self.assertEqual(self.endpoint(eid)["VpcEndpointId"], eid)
        for f in [{"Name": "vpc-id", "Values": [vid]}, {"Name": "service-name", "Values": [SSM]},
                  {"Name": "vpc-endpoint-id", "Values": [eid]}, {"Name": "vpc-endpoint-type", "Values": ["Interface"]},
                  {"Name": "vpc-endpoint-state", "Values": ["pending", "available"]},
                  {"Name": "tag:Name", "Values": ["ss*"]}, {"Name": "tag-key", "Values": ["Name"]}]:
            listed = self.ec2.describe_vpc_endpoints(Filters=[f])["VpcEndpoints"]
            self.assertEqual([x["VpcEndpointId"] for x in listed], [eid], f)
        for f in [{"Name": "vpc-endpoint-type", "Values": ["Gateway"]}, {"Name": "service-name", "Values": [S3]},
                  {"Name": "tag:Name", "Values": ["other"]}]:
            self.assertEqual(self.ec2.describe_vpc_endpoints(Filters=[f])["VpcEndpoints"], [], f)
        self.assertEqual(self.error(self.ec2.describe_vpc_endpoints, Filters=[{"Name": "bogus", "Values": ["x"]}]),
                         ("InvalidParameterValue", "The filter 'bogus' is invalid"))
        self.assertEqual(self.error(self.ec2.describe_vpc_endpoints, VpcEndpointIds=[MISSING_VPCE]),
                         ("InvalidVpcEndpointId.NotFound", "The vpcEndpoint ID '%s' does not exist" % MISSING_VPCE))
        tags = self.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [eid]}])["Tags"]
        self.assertEqual([(t["Key"], t["ResourceType"]) for t in tags], [("Name", "vpc-endpoint")])

        # What it holds cannot go: its ENIs, their subnets and groups, the VPC.
        before = self.state()
        eni = ep["NetworkInterfaceIds"][0]
        self.assertEqual(self.error(self.ec2.delete_network_interface, NetworkInterfaceId=eni)[0], "OperationNotPermitted")
        self.assertEqual(self.error(self.ec2.delete_subnet, SubnetId=sn["a"]),
                         ("DependencyViolation", "The subnet '%s' has dependencies and cannot be deleted." % sn["a"]))
        self.assertEqual(self.error(self.ec2.delete_security_group, GroupId=sg)[0], "DependencyViolation")
        self.assertEqual(self.error(self.ec2.delete_vpc, VpcId=vid),
                         ("DependencyViolation", "The vpc '%s' has dependencies and cannot be deleted." % vid))
        self.assertEqual(self.state(), before)

        # Delete: unknown ids are reported per id; the endpoint goes "deleting".
        out = self.ec2.delete_vpc_endpoints(VpcEndpointIds=[eid, MISSING_VPCE])
        self.assertEqual(out["Unsuccessful"], [{"Error": {"Code": "InvalidVpcEndpoint.NotFound",
                                                          "Message": "The vpcEndpoint ID '%s' does not exist" % MISSING_VPCE},
                                                "ResourceId": MISSING_VPCE}])
        got = self.ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-endpoint-id", "Values": [eid]}])["VpcEndpoints"]
        if got:  # (the network controller may already have taken it down)
            self.assertEqual(got[0]["State"], "deleting")
            self.assertIn(self.error(self.ec2.modify_vpc_endpoint, VpcEndpointId=eid, AddSubnetIds=[sn["a2"]])[0],
                          ("IncorrectState", "InvalidVpcEndpointId.NotFound"))
        self.assertEqual(self.ec2.delete_vpc_endpoints(VpcEndpointIds=[MISSING_VPCE])["Unsuccessful"][0]["ResourceId"],
                         MISSING_VPCE)

    def test_private_dns_needs_the_vpcs_dns_attributes_and_its_names(self):
        vid, sn = self.network()  # a new VPC has DNS hostnames off, as on AWS
        before = self.state()
        # AWS's default for its services is private DNS on: refused here.
        self.assertEqual(self.error(self.ec2.create_vpc_endpoint, VpcId=vid, ServiceName=SSM, SubnetIds=[sn["a"]]),
                         ("InvalidParameter", "Enabling private DNS requires both enableDnsSupport and "
                                              "enableDnsHostnames VPC attributes set to true for %s" % vid))
        self.assertEqual(self.state(), before)
        ep = self.interface(vid, [sn["a"]], PrivateDnsEnabled=False)
        self.assertFalse(ep["PrivateDnsEnabled"])
        self.assertEqual(len(ep["DnsEntries"]), 2)
        self.assertNotIn("ssm.us-east-1.amazonaws.com", [d["DnsName"] for d in ep["DnsEntries"]])
        eid = ep["VpcEndpointId"]
        before = self.state()
        self.assertEqual(self.error(self.ec2.modify_vpc_endpoint, VpcEndpointId=eid, PrivateDnsEnabled=True)[0],
                         "InvalidParameter")
        self.assertEqual(self.state(), before)

        self.ec2.modify_vpc_attribute(VpcId=vid, EnableDnsHostnames={"Value": True})
        self.assertTrue(self.ec2.modify_vpc_endpoint(VpcEndpointId=eid, PrivateDnsEnabled=True)["Return"])
        got = self.endpoint(eid)
        self.assertTrue(got["PrivateDnsEnabled"])
        self.assertEqual(got["DnsEntries"][-1]["DnsName"], "ssm.us-east-1.amazonaws.com")

        # The names are taken in this VPC: a second endpoint cannot have them.
        before = self.state()
        self.assertEqual(self.error(self.ec2.create_vpc_endpoint, VpcId=vid, ServiceName=SSM, SubnetIds=[sn["b"]]),
                         ("InvalidParameter", "private-dns-enabled cannot be set because there is already a conflicting "
                                              "DNS domain for ssm.us-east-1.amazonaws.com in the VPC %s" % vid))
        self.assertEqual(self.state(), before)
        other = self.interface(vid, [sn["b"]], PrivateDnsEnabled=False)["VpcEndpointId"]
        self.assertEqual(self.error(self.ec2.modify_vpc_endpoint, VpcEndpointId=other, PrivateDnsEnabled=True)[0],
                         "InvalidParameter")
        # Another service's names are free.
        logs = self.interface(vid, [sn["b"]], ServiceName="com.amazonaws.us-east-1.logs")
        self.assertEqual(logs["DnsEntries"][-1]["DnsName"], "logs.us-east-1.amazonaws.com")
        # Off again, the names leave the entries.
        self.ec2.modify_vpc_endpoint(VpcEndpointId=eid, PrivateDnsEnabled=False)
        self.assertEqual(len(self.endpoint(eid)["DnsEntries"]), 2)

    def test_bad_requests_change_nothing(self):
        vid, sn = self.network(hostnames=True)
        other_vid = self.ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        foreign = self.ec2.create_subnet(VpcId=other_vid, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
        rtb = self.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]}])["RouteTables"][0]
        before = self.state()
        cases = [
            (dict(ServiceName="com.amazonaws.us-east-1.banana", SubnetIds=[sn["a"]]),
             ("InvalidServiceName", "The Vpc Endpoint Service 'com.amazonaws.us-east-1.banana' does not exist")),
            (dict(ServiceName="com.amazonaws.us-west-2.ssm", SubnetIds=[sn["a"]]),
             ("InvalidServiceName", "The Vpc Endpoint Service 'com.amazonaws.us-west-2.ssm' does not exist")),
            (dict(ServiceName="com.amazonaws.us-east-1.dynamodb", SubnetIds=[sn["a"]]),
             ("InvalidServiceName", "The Vpc Endpoint Service 'com.amazonaws.us-east-1.dynamodb' does not support "
                                    "the endpoint type 'Interface'.")),
            (dict(ServiceName=SSM, VpcEndpointType="Gateway", RouteTableIds=[rtb["RouteTableId"]]),
             ("InvalidServiceName", "The Vpc Endpoint Service '%s' does not support the endpoint type 'Gateway'." % SSM)),
            (dict(ServiceName=SSM, SubnetIds=[sn["b"], sn["a"], sn["a2"]]),
             ("DuplicateSubnetsInSameZone", "Found another VPC endpoint subnet in the availability zone of %s. VPC "
                                            "endpoint subnets should be in different availability zones supported "
                                            "by the VPC endpoint service." % sn["a"])),
            (dict(ServiceName=SSM, SubnetIds=[sn["a"], foreign]), ("InvalidParameter", None)),
            (dict(ServiceName=SSM, SubnetIds=["subnet-0123456789abcdef0"]),
             ("InvalidSubnetID.NotFound", "The subnet ID 'subnet-0123456789abcdef0' does not exist")),
            (dict(ServiceName=SSM, SubnetIds=[sn["a"]], SecurityGroupIds=["sg-0123456789abcdef0"]),
             ("InvalidGroup.NotFound", "The security group 'sg-0123456789abcdef0' does not exist")),
            (dict(ServiceName=SSM, SubnetIds=[sn["a"]], RouteTableIds=[rtb["RouteTableId"]]),
             ("InvalidParameter", "Route table IDs are only supported for Gateway type VPC Endpoint.")),
            (dict(ServiceName=SSM, SubnetIds=[sn["a"]], PolicyDocument="{not json"), ("InvalidPolicyDocument", None)),
            (dict(ServiceName=SSM, SubnetIds=[sn["a"]], DryRun=True), ("DryRunOperation", None)),
        ]
        for kw, (code, msg) in cases:
            got = self.error(self.ec2.create_vpc_endpoint, VpcId=vid, **kw)
            self.assertEqual(got[0], code, kw)
            if msg:
                self.assertEqual(got[1], msg, kw)
        self.assertEqual(self.error(self.ec2.create_vpc_endpoint, VpcId="vpc-0123456789abcdef0", ServiceName=SSM),
                         ("InvalidVpcID.NotFound", "The vpc ID 'vpc-0123456789abcdef0' does not exist"))
        self.assertEqual(self.error(self.ec2.modify_vpc_endpoint, VpcEndpointId=MISSING_VPCE, PolicyDocument="{}"),
                         ("InvalidVpcEndpointId.NotFound", "The vpcEndpoint ID '%s' does not exist" % MISSING_VPCE))
        self.assertEqual(self.state(), before)

    def test_client_token_is_idempotent(self):
        vid, sn = self.network()
        first = self.ec2.create_vpc_endpoint(VpcId=vid, ServiceName=SSM, SubnetIds=[sn["a"]], PrivateDnsEnabled=False,
                                             ClientToken="token-1")
        again = self.ec2.create_vpc_endpoint(VpcId=vid, ServiceName=SSM, SubnetIds=[sn["a"]], PrivateDnsEnabled=False,
                                             ClientToken="token-1")
        self.assertEqual((first["ClientToken"], again["ClientToken"]), ("token-1", "token-1"))
        self.assertEqual(again["VpcEndpoint"]["VpcEndpointId"], first["VpcEndpoint"]["VpcEndpointId"])
        self.assertEqual(again["VpcEndpoint"]["NetworkInterfaceIds"], first["VpcEndpoint"]["NetworkInterfaceIds"])
        self.assertEqual(len(self.ec2.describe_vpc_endpoints()["VpcEndpoints"]), 1)
        enis = self.ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NetworkInterfaces"]
        self.assertEqual(len(enis), 1)
        before = self.state()
        self.assertEqual(self.error(self.ec2.create_vpc_endpoint, VpcId=vid, ServiceName=SSM, SubnetIds=[sn["b"]],
                                    PrivateDnsEnabled=False, ClientToken="token-1")[0], "IdempotentParameterMismatch")
        self.assertEqual(self.state(), before)
        other = self.ec2.create_vpc_endpoint(VpcId=vid, ServiceName=SSM, SubnetIds=[sn["b"]], PrivateDnsEnabled=False,
                                             ClientToken="token-2")["VpcEndpoint"]
        self.assertNotEqual(other["VpcEndpointId"], first["VpcEndpoint"]["VpcEndpointId"])

    def test_modify_subnets_groups_and_policy(self):
        vid, sn = self.network()
        c = self.ec2.create_subnet(VpcId=vid, CidrBlock="10.0.4.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
        default = self.ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vid]},
                                                             {"Name": "group-name", "Values": ["default"]}])
        dsg = default["SecurityGroups"][0]["GroupId"]
        sg2 = self.ec2.create_security_group(VpcId=vid, GroupName="ep", Description="endpoint")["GroupId"]
        ep = self.interface(vid, [sn["a"]], PrivateDnsEnabled=False)
        eid = ep["VpcEndpointId"]
        self.assertEqual(ep["Groups"], [{"GroupId": dsg, "GroupName": "default"}])
        first_eni = ep["NetworkInterfaceIds"][0]

        self.assertTrue(self.ec2.modify_vpc_endpoint(VpcEndpointId=eid, AddSubnetIds=[sn["b"]], AddSecurityGroupIds=[sg2],
                                                     RemoveSecurityGroupIds=[dsg])["Return"])
        got = self.endpoint(eid)
        self.assertEqual(got["SubnetIds"], [sn["a"], sn["b"]])
        self.assertEqual(got["Groups"], [{"GroupId": sg2, "GroupName": "ep"}])
        self.assertIn(got["State"], ("pending", "available"))  # pending again until the new ENI is wired
        self.assertEqual(len(got["DnsEntries"]), 3)
        self.assertTrue(got["DnsEntries"][2]["DnsName"].split(".")[0].endswith("-us-east-1b"))
        enis = self.ec2.describe_network_interfaces(NetworkInterfaceIds=got["NetworkInterfaceIds"])["NetworkInterfaces"]
        self.assertEqual([e["Groups"] for e in enis], [[{"GroupId": sg2, "GroupName": "ep"}]] * 2)
        # The default group is free again; the new one is held.
        self.assertEqual(self.error(self.ec2.delete_security_group, GroupId=sg2)[0], "DependencyViolation")

        before = self.state()
        for kw, code in [(dict(AddSubnetIds=[c]), "DuplicateSubnetsInSameZone"),
                         (dict(RemoveSubnetIds=[sn["a2"]]), "InvalidParameter"),
                         (dict(RemoveSecurityGroupIds=[sg2]), "InvalidParameter"),
                         (dict(RemoveSecurityGroupIds=[dsg]), "InvalidParameter"),
                         (dict(AddSecurityGroupIds=["sg-0123456789abcdef0"]), "InvalidGroup.NotFound"),
                         (dict(AddRouteTableIds=["rtb-0123456789abcdef0"]), "InvalidParameter"),
                         (dict(PolicyDocument="[1, 2"), "InvalidPolicyDocument"),
                         (dict(ResetPolicy=True, PolicyDocument="{}"), "InvalidParameterCombination"),
                         # All or nothing: the good half of a bad call is not kept.
                         (dict(RemoveSubnetIds=[sn["b"]], AddSubnetIds=[sn["a2"]]), "DuplicateSubnetsInSameZone")]:
            self.assertEqual(self.error(self.ec2.modify_vpc_endpoint, VpcEndpointId=eid, **kw)[0], code, kw)
        self.assertEqual(self.state(), before)

        # A subnet removed takes its ENI; one in the same zone can then come.
        self.ec2.modify_vpc_endpoint(VpcEndpointId=eid, RemoveSubnetIds=[sn["a"]], AddSubnetIds=[sn["a2"]])
        got = self.endpoint(eid)
        self.assertEqual(got["SubnetIds"], [sn["b"], sn["a2"]])
        self.assertNotIn(first_eni, got["NetworkInterfaceIds"])
        self.assertEqual(self.error(self.ec2.describe_network_interfaces, NetworkInterfaceIds=[first_eni])[0],
                         "InvalidNetworkInterfaceID.NotFound")
        self.assertEqual(self.ec2.describe_subnets(SubnetIds=[sn["a"]])["Subnets"][0]["AvailableIpAddressCount"], 251)
        self.ec2.delete_subnet(SubnetId=sn["a"])

        policy = '{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ssm:*","Resource":"*"}]}'
        self.ec2.modify_vpc_endpoint(VpcEndpointId=eid, PolicyDocument=policy)
        self.assertEqual(self.endpoint(eid)["PolicyDocument"], policy)
        self.ec2.modify_vpc_endpoint(VpcEndpointId=eid, ResetPolicy=True)
        self.assertEqual(self.endpoint(eid)["PolicyDocument"], FULL_ACCESS)

    @unittest.skipUnless(ROOT, "pierd's network controller runs as root only")
    def test_available_once_wired_and_gone_once_deleted(self):
        vid, sn = self.network()
        ep = self.interface(vid, [sn["a"], sn["b"]], PrivateDnsEnabled=False)
        eid = ep["VpcEndpointId"]
        self.wait_for("the endpoint to be available", lambda: self.endpoint(eid)["State"] == "available")
        self.ec2.delete_vpc_endpoints(VpcEndpointIds=[eid])

        def gone():
            return not self.ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-endpoint-id", "Values": [eid]}])["VpcEndpoints"]
        self.wait_for("the endpoint to be gone", gone)
        self.assertEqual(self.error(self.ec2.describe_vpc_endpoints, VpcEndpointIds=[eid])[0],
                         "InvalidVpcEndpointId.NotFound")
        left = self.ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NetworkInterfaces"]
        self.assertEqual(left, [])
        for s in sn.values():
            self.ec2.delete_subnet(SubnetId=s)
        self.ec2.delete_vpc(VpcId=vid)


class GatewayEndpoints(EndpointTest):
    def test_s3_gateway_routes_to_its_prefix_list(self):
        vid = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        main = self.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]}])["RouteTables"][0]["RouteTableId"]
        extra = self.ec2.create_route_table(VpcId=vid)["RouteTable"]["RouteTableId"]
        pls = self.ec2.describe_prefix_lists(Filters=[{"Name": "prefix-list-name", "Values": [S3]}])["PrefixLists"]
        self.assertEqual(len(pls), 1)
        pl = pls[0]["PrefixListId"]
        self.assertRegex(pl, r"^pl-[0-9a-f]{8}$")

        ep = self.ec2.create_vpc_endpoint(VpcEndpointType="Gateway", VpcId=vid, ServiceName=S3,
                                          RouteTableIds=[main])["VpcEndpoint"]
        eid = ep["VpcEndpointId"]
        self.assertEqual((ep["VpcEndpointType"], ep["State"], ep["RouteTableIds"], ep["SubnetIds"], ep["Groups"],
                          ep["NetworkInterfaceIds"], ep["DnsEntries"], ep["PrivateDnsEnabled"], ep["PolicyDocument"]),
                         ("Gateway", "available", [main], [], [], [], [], False, FULL_ACCESS))
        route = {"DestinationPrefixListId": pl, "GatewayId": eid, "Origin": "CreateRoute", "State": "active"}
        routes = lambda t: self.ec2.describe_route_tables(RouteTableIds=[t])["RouteTables"][0]["Routes"]
        self.assertIn(route, routes(main))
        found = self.ec2.describe_route_tables(Filters=[{"Name": "route.gateway-id", "Values": [eid]}])["RouteTables"]
        self.assertEqual([t["RouteTableId"] for t in found], [main])
        found = self.ec2.describe_route_tables(Filters=[{"Name": "route.destination-prefix-list-id",
                                                         "Values": [pl]}])["RouteTables"]
        self.assertEqual([t["RouteTableId"] for t in found], [main])

        before = self.state()
        # One route per prefix list in a table.
        self.assertEqual(self.error(self.ec2.create_vpc_endpoint, VpcEndpointType="Gateway", VpcId=vid, ServiceName=S3,
                                    RouteTableIds=[extra, main])[0], "RouteAlreadyExists")
        for kw in [dict(SubnetIds=["subnet-0123456789abcdef0"]), dict(SecurityGroupIds=["sg-0123456789abcdef0"]),
                   dict(RouteTableIds=["rtb-0123456789abcdef0"])]:
            code = "InvalidRouteTableID.NotFound" if "RouteTableIds" in kw else "InvalidParameter"
            self.assertEqual(self.error(self.ec2.create_vpc_endpoint, VpcEndpointType="Gateway", VpcId=vid,
                                        ServiceName=S3, **kw)[0], code, kw)
        # The endpoint's route is not DeleteRoute's to take (nor can it be
        # confused with a CIDR route).
        with self.assertRaises(ClientError):
            self.ec2.delete_route(RouteTableId=main, DestinationPrefixListId=pl)
        self.assertEqual(self.error(self.ec2.delete_route, RouteTableId=main, DestinationCidrBlock="0.0.0.0/0")[0],
                         "InvalidRoute.NotFound")
        self.assertEqual(self.error(self.ec2.modify_vpc_endpoint, VpcEndpointId=eid, AddSubnetIds=["subnet-0"])[0],
                         "InvalidParameter")
        self.assertEqual(self.error(self.ec2.modify_vpc_endpoint, VpcEndpointId=eid, RemoveRouteTableIds=[extra])[0],
                         "InvalidParameter")
        self.assertEqual(self.state(), before)

        # Modify moves the routes with the tables.
        self.ec2.modify_vpc_endpoint(VpcEndpointId=eid, AddRouteTableIds=[extra], RemoveRouteTableIds=[main])
        self.assertEqual(self.endpoint(eid)["RouteTableIds"], [extra])
        self.assertNotIn(route, routes(main))
        self.assertIn(route, routes(extra))
        self.ec2.modify_vpc_endpoint(VpcEndpointId=eid, AddRouteTableIds=[main], RemoveRouteTableIds=[extra])
        self.assertEqual(self.endpoint(eid)["RouteTableIds"], [main])
        self.ec2.delete_route_table(RouteTableId=extra)

        # A VPC with only a gateway endpoint still cannot go.
        self.assertEqual(self.error(self.ec2.delete_vpc, VpcId=vid),
                         ("DependencyViolation", "The vpc '%s' has dependencies and cannot be deleted." % vid))
        # Deleting it takes its routes, at once.
        self.assertEqual(self.ec2.delete_vpc_endpoints(VpcEndpointIds=[eid])["Unsuccessful"], [])
        self.assertEqual(self.error(self.ec2.describe_vpc_endpoints, VpcEndpointIds=[eid])[0],
                         "InvalidVpcEndpointId.NotFound")
        self.assertEqual([r.get("GatewayId") for r in routes(main)], ["local"])
        self.ec2.delete_vpc(VpcId=vid)

    def test_services_and_prefix_lists_from_the_catalog(self):
        out = self.ec2.describe_vpc_endpoint_services()
        names = out["ServiceNames"]
        self.assertEqual(names, sorted(names))
        for n in (SSM, S3, "com.amazonaws.us-east-1.dynamodb", "com.amazonaws.us-east-1.ecr.dkr"):
            self.assertIn(n, names)
        details = {}
        for d in out["ServiceDetails"]:
            details.setdefault(d["ServiceName"], []).append(d)
        self.assertEqual(sorted(t["ServiceType"][0]["ServiceType"] for t in details[S3]), ["Gateway", "Interface"])
        ssm = details[SSM][0]
        self.assertEqual((ssm["ServiceType"], ssm["Owner"], ssm["BaseEndpointDnsNames"], ssm["PrivateDnsName"],
                          ssm["PrivateDnsNames"], ssm["AcceptanceRequired"], ssm["ManagesVpcEndpoints"],
                          ssm["VpcEndpointPolicySupported"], ssm["SupportedIpAddressTypes"]),
                         ([{"ServiceType": "Interface"}], "amazon", ["ssm.us-east-1.vpce.amazonaws.com"],
                          "ssm.us-east-1.amazonaws.com", [{"PrivateDnsName": "ssm.us-east-1.amazonaws.com"}],
                          False, False, True, ["ipv4"]))
        self.assertEqual(ssm["AvailabilityZones"], ["us-east-1" + c for c in "abcdef"])
        dynamo = details["com.amazonaws.us-east-1.dynamodb"][0]
        self.assertEqual((dynamo["ServiceType"], dynamo["BaseEndpointDnsNames"]),
                         ([{"ServiceType": "Gateway"}], ["dynamodb.us-east-1.amazonaws.com"]))
        self.assertNotIn("PrivateDnsName", dynamo)
        self.assertEqual(details["com.amazonaws.us-east-1.ecr.dkr"][0]["PrivateDnsName"],
                         "*.dkr.ecr.us-east-1.amazonaws.com")

        one = self.ec2.describe_vpc_endpoint_services(ServiceNames=[SSM])
        self.assertEqual((one["ServiceNames"], [d["ServiceName"] for d in one["ServiceDetails"]]), ([SSM], [SSM]))
        gateways = self.ec2.describe_vpc_endpoint_services(Filters=[{"Name": "service-type", "Values": ["Gateway"]}])
        self.assertEqual(gateways["ServiceNames"], ["com.amazonaws.us-east-1.dynamodb", S3])
        self.assertEqual(self.error(self.ec2.describe_vpc_endpoint_services,
                                    ServiceNames=["com.amazonaws.us-east-1.banana"]),
                         ("InvalidServiceName", "The Vpc Endpoint Service 'com.amazonaws.us-east-1.banana' does not exist"))

        pls = self.ec2.describe_prefix_lists()["PrefixLists"]
        self.assertEqual([p["PrefixListName"] for p in pls], ["com.amazonaws.us-east-1.dynamodb", S3])
        s3 = pls[1]
        self.assertEqual(s3["Cidrs"], ["198.18.0.16/32"])  # the catalog's public address of s3 in us-east-1
        self.assertEqual(self.ec2.describe_prefix_lists(PrefixListIds=[s3["PrefixListId"]])["PrefixLists"], [s3])
        by_id = self.ec2.describe_prefix_lists(Filters=[{"Name": "prefix-list-id", "Values": [s3["PrefixListId"]]}])
        self.assertEqual(by_id["PrefixLists"], [s3])
        self.assertEqual(self.error(self.ec2.describe_prefix_lists, PrefixListIds=["pl-00000000"]),
                         ("InvalidPrefixListId.NotFound", "The prefix list ID 'pl-00000000' does not exist"))
        # Deterministic, and of their region.
        self.assertEqual(self.ec2.describe_prefix_lists()["PrefixLists"], pls)
        west = self.checked("ec2", region="us-west-2").describe_prefix_lists()["PrefixLists"]
        self.assertEqual(west[1]["PrefixListName"], "com.amazonaws.us-west-2.s3")
        self.assertEqual(west[1]["Cidrs"], ["198.18.3.16/32"])
        self.assertNotEqual(west[1]["PrefixListId"], s3["PrefixListId"])


class Cli(EndpointTest):
    def test_cli_v2(self):
        vid, sn = self.network()
        ep = self.pierd.cli_json(2, "ec2", "create-vpc-endpoint", "--vpc-id", vid, "--service-name",
                                 "com.amazonaws.us-east-1.logs", "--subnet-ids", sn["a"], sn["b"],
                                 "--no-private-dns-enabled", "--tag-specifications",
                                 "ResourceType=vpc-endpoint,Tags=[{Key=Name,Value=logs}]")["VpcEndpoint"]
        eid = ep["VpcEndpointId"]
        self.assertEqual((ep["State"], ep["SubnetIds"], ep["PrivateDnsEnabled"]), ("pending", [sn["a"], sn["b"]], False))
        listed = self.pierd.cli_json(2, "ec2", "describe-vpc-endpoints", "--filters",
                                     "Name=vpc-id,Values=%s" % vid)["VpcEndpoints"]
        self.assertEqual([(x["VpcEndpointId"], x["Tags"]) for x in listed], [(eid, [{"Key": "Name", "Value": "logs"}])])
        out = self.pierd.cli_json(2, "ec2", "delete-vpc-endpoints", "--vpc-endpoint-ids", eid)
        self.assertEqual(out["Unsuccessful"], [])
        p = self.pierd.cli(2, "ec2", "describe-vpc-endpoints", "--vpc-endpoint-ids", MISSING_VPCE, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("InvalidVpcEndpointId.NotFound", p.stderr)


if __name__ == "__main__":
    unittest.main()

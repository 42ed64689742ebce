"""The EC2 VPC control plane (the API side of issue 4) with boto3 — every
response checked against the botocore output shape — and the AWS CLI v1 and
v2: the default VPC, VPCs and their attributes, subnets and AWS's CIDR rules,
internet gateways, tags and filters. Bad input gets AWS's codes and changes
nothing."""
import unittest


from pier_harness import PierTestCase


class Ec2Test(PierTestCase):
    def setUp(self):
        super().setUp()
        self.ec2 = self.checked("ec2")

    def make_vpc(self, cidr="10.0.0.0/16", name="main"):
        return self.ec2.create_vpc(CidrBlock=cidr, TagSpecifications=[
            {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}])["Vpc"]

    def state(self):
        """Everything a test could see, to prove a refused call changed nothing."""
        return (self.ec2.describe_vpcs()["Vpcs"], self.ec2.describe_subnets()["Subnets"],
                self.ec2.describe_internet_gateways()["InternetGateways"], self.ec2.describe_tags()["Tags"])


class DefaultVpc(Ec2Test):
    def test_a_new_account_has_a_default_vpc(self):
        vpcs = self.ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
        self.assertEqual(len(vpcs), 1)
        vpc = vpcs[0]
        self.assertEqual((vpc["CidrBlock"], vpc["State"], vpc["IsDefault"]), ("172.31.0.0/16", "available", True))
        subnets = self.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
        self.assertEqual(sorted(s["AvailabilityZone"] for s in subnets), ["us-east-1" + c for c in "abcdef"])
        self.assertEqual(sorted(s["CidrBlock"] for s in subnets),
                         sorted("172.31.%d.0/20" % (16 * i) for i in range(6)))
        self.assertTrue(all(s["DefaultForAz"] and s["MapPublicIpOnLaunch"] for s in subnets))
        self.assertEqual({s["AvailableIpAddressCount"] for s in subnets}, {4096 - 5})
        igws = self.ec2.describe_internet_gateways(
            Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}])["InternetGateways"]
        self.assertEqual(len(igws), 1)
        main = self.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                                                       {"Name": "association.main", "Values": ["true"]}])
        routes = main["RouteTables"][0]["Routes"]
        self.assertIn({"DestinationCidrBlock": "172.31.0.0/16", "GatewayId": "local", "Origin": "CreateRouteTable",
                       "State": "active"}, routes)
        self.assertIn("0.0.0.0/0", [r["DestinationCidrBlock"] for r in routes
                                     if r.get("GatewayId") == igws[0]["InternetGatewayId"]])
        attr = self.ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute="enableDnsHostnames")
        self.assertTrue(attr["EnableDnsHostnames"]["Value"])
        # Made once: the same VPC on every call.
        again = self.ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
        self.assertEqual([v["VpcId"] for v in again], [vpc["VpcId"]])

    def test_regions_and_zones(self):
        zones = self.ec2.describe_availability_zones()["AvailabilityZones"]
        self.assertEqual([z["ZoneName"] for z in zones], ["us-east-1" + c for c in "abcdef"])
        self.assertEqual(zones[0]["ZoneId"], "use1-az1")
        self.assertIn("us-east-1", [r["RegionName"] for r in self.ec2.describe_regions()["Regions"]])
        code, _ = self.error(self.ec2.describe_availability_zones, ZoneNames=["us-east-1z"])
        self.assertEqual(code, "InvalidParameterValue")


class Vpcs(Ec2Test):
    def test_vpc_with_what_aws_makes_with_it(self):
        vpc = self.make_vpc()
        self.assertRegex(vpc["VpcId"], r"^vpc-[0-9a-f]{17}$")
        self.assertEqual((vpc["CidrBlock"], vpc["IsDefault"], vpc["Tags"]),
                         ("10.0.0.0/16", False, [{"Key": "Name", "Value": "main"}]))
        vid = vpc["VpcId"]
        get = lambda a: self.ec2.describe_vpc_attribute(VpcId=vid, Attribute=a)
        self.assertTrue(get("enableDnsSupport")["EnableDnsSupport"]["Value"])
        self.assertFalse(get("enableDnsHostnames")["EnableDnsHostnames"]["Value"])
        self.assertFalse(get("enableNetworkAddressUsageMetrics")["EnableNetworkAddressUsageMetrics"]["Value"])
        self.ec2.modify_vpc_attribute(VpcId=vid, EnableDnsHostnames={"Value": True})
        self.assertTrue(get("enableDnsHostnames")["EnableDnsHostnames"]["Value"])

        groups = self.ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vid]}])["SecurityGroups"]
        self.assertEqual([g["GroupName"] for g in groups], ["default"])
        self.assertEqual(groups[0]["IpPermissionsEgress"][0]["IpRanges"], [{"CidrIp": "0.0.0.0/0"}])
        self.assertEqual(groups[0]["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"], groups[0]["GroupId"])
        tables = self.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]}])["RouteTables"]
        self.assertEqual(len(tables), 1)
        self.assertTrue(tables[0]["Associations"][0]["Main"])
        self.assertEqual(tables[0]["Routes"], [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local",
                                                "Origin": "CreateRouteTable", "State": "active"}])
        acls = self.ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vid]}])["NetworkAcls"]
        self.assertEqual(len(acls), 1)
        self.assertTrue(acls[0]["IsDefault"])

        # Filters: tags, wildcards, ids.
        self.make_vpc("10.1.0.0/16", "other")
        by_tag = self.ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["ma*"]}])["Vpcs"]
        self.assertEqual([v["VpcId"] for v in by_tag], [vid])
        self.assertEqual(len(self.ec2.describe_vpcs(Filters=[{"Name": "tag-key", "Values": ["Name"]}])["Vpcs"]), 2)
        self.assertEqual(self.ec2.describe_vpcs(VpcIds=[vid])["Vpcs"][0]["VpcId"], vid)
        self.assertEqual(self.error(self.ec2.describe_vpcs, Filters=[{"Name": "bogus", "Values": ["x"]}]),
                         ("InvalidParameterValue", "The filter 'bogus' is invalid"))

        self.ec2.delete_vpc(VpcId=vid)
        self.assertEqual(self.error(self.ec2.describe_vpcs, VpcIds=[vid]),
                         ("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist" % vid))
        self.assertEqual(self.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]}])["RouteTables"], [])

    def test_bad_vpcs_change_nothing(self):
        before = self.state()
        for cidr, code in [("10.0.0.0/8", "InvalidVpc.Range"), ("10.0.0.0/29", "InvalidVpc.Range"),
                           ("10.0.0.1/16", "InvalidParameterValue"), ("banana", "InvalidParameterValue"),
                           ("010.0.0.0/16", "InvalidParameterValue")]:
            self.assertEqual(self.error(self.ec2.create_vpc, CidrBlock=cidr)[0], code, cidr)
        self.assertEqual(self.error(self.ec2.create_vpc, CidrBlock="10.0.0.0/16", DryRun=True)[0], "DryRunOperation")
        self.assertEqual(self.error(self.ec2.delete_vpc, VpcId="vpc-0123456789abcdef0")[0], "InvalidVpcID.NotFound")
        self.assertEqual(self.error(self.ec2.describe_vpc_attribute, VpcId="vpc-0123456789abcdef0",
                                    Attribute="enableDnsSupport")[0], "InvalidVpcID.NotFound")
        self.assertEqual(self.state(), before)

    def test_subnets_follow_awss_cidr_rules(self):
        vid = self.make_vpc()["VpcId"]
        sn = self.ec2.create_subnet(VpcId=vid, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1b")["Subnet"]
        self.assertRegex(sn["SubnetId"], r"^subnet-[0-9a-f]{17}$")
        self.assertEqual((sn["AvailableIpAddressCount"], sn["AvailabilityZone"], sn["AvailabilityZoneId"],
                          sn["DefaultForAz"], sn["MapPublicIpOnLaunch"]), (251, "us-east-1b", "use1-az2", False, False))
        before = self.state()
        cases = [
            (dict(VpcId=vid, CidrBlock="10.0.1.128/25"), ("InvalidSubnet.Conflict",
                                                           "The CIDR '10.0.1.128/25' conflicts with another subnet")),
            (dict(VpcId=vid, CidrBlock="10.0.0.0/15"), ("InvalidSubnet.Range", "The CIDR '10.0.0.0/15' is invalid.")),
            (dict(VpcId=vid, CidrBlock="10.1.0.0/24"), ("InvalidSubnet.Range", "The CIDR '10.1.0.0/24' is invalid.")),
            (dict(VpcId=vid, CidrBlock="10.0.2.0/29"), ("InvalidSubnet.Range", "The CIDR '10.0.2.0/29' is invalid.")),
            (dict(VpcId="vpc-0123456789abcdef0", CidrBlock="10.0.2.0/24"),
             ("InvalidVpcID.NotFound", "The vpc ID 'vpc-0123456789abcdef0' does not exist")),
        ]
        for kw, want in cases:
            self.assertEqual(self.error(self.ec2.create_subnet, **kw), want, kw)
        code, msg = self.error(self.ec2.create_subnet, VpcId=vid, CidrBlock="10.0.2.0/24", AvailabilityZone="us-east-1z")
        self.assertEqual(code, "InvalidParameterValue")
        self.assertIn("us-east-1a, us-east-1b", msg)
        self.assertEqual(self.state(), before)

        # The smallest subnet AWS allows: 16 addresses, 11 usable.
        tiny = self.ec2.create_subnet(VpcId=vid, CidrBlock="10.0.2.0/28")["Subnet"]
        self.assertEqual(tiny["AvailableIpAddressCount"], 11)
        listed = self.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vid]},
                                                    {"Name": "availability-zone", "Values": ["us-east-1b"]}])["Subnets"]
        self.assertEqual([s["SubnetId"] for s in listed], [sn["SubnetId"]])
        acl = self.ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id",
                                                       "Values": [sn["SubnetId"]]}])["NetworkAcls"]
        self.assertEqual(len(acl), 1)

        # A VPC with subnets cannot go; its subnets can, then it can.
        self.assertEqual(self.error(self.ec2.delete_vpc, VpcId=vid),
                         ("DependencyViolation", "The vpc '%s' has dependencies and cannot be deleted." % vid))
        for s in (sn, tiny):
            self.ec2.delete_subnet(SubnetId=s["SubnetId"])
        self.assertEqual(self.error(self.ec2.delete_subnet, SubnetId=sn["SubnetId"])[0], "InvalidSubnetID.NotFound")
        self.ec2.delete_vpc(VpcId=vid)

    def test_internet_gateways(self):
        vid = self.make_vpc()["VpcId"]
        igw = self.ec2.create_internet_gateway(TagSpecifications=[
            {"ResourceType": "internet-gateway", "Tags": [{"Key": "Name", "Value": "gw"}]}])["InternetGateway"]
        gid = igw["InternetGatewayId"]
        self.assertEqual((igw["Attachments"], igw["Tags"]), ([], [{"Key": "Name", "Value": "gw"}]))
        self.ec2.attach_internet_gateway(InternetGatewayId=gid, VpcId=vid)
        got = self.ec2.describe_internet_gateways(InternetGatewayIds=[gid])["InternetGateways"][0]
        self.assertEqual(got["Attachments"], [{"State": "available", "VpcId": vid}])
        before = self.state()
        self.assertEqual(self.error(self.ec2.attach_internet_gateway, InternetGatewayId=gid, VpcId=vid)[0],
                         "Resource.AlreadyAssociated")
        self.assertEqual(self.error(self.ec2.delete_internet_gateway, InternetGatewayId=gid)[0], "DependencyViolation")
        self.assertEqual(self.error(self.ec2.delete_vpc, VpcId=vid)[0], "DependencyViolation")
        self.assertEqual(self.error(self.ec2.detach_internet_gateway, InternetGatewayId=gid,
                                    VpcId="vpc-0123456789abcdef0")[0], "Gateway.NotAttached")
        self.assertEqual(self.state(), before)
        self.ec2.detach_internet_gateway(InternetGatewayId=gid, VpcId=vid)
        self.ec2.delete_internet_gateway(InternetGatewayId=gid)
        self.assertEqual(self.error(self.ec2.describe_internet_gateways, InternetGatewayIds=[gid])[0],
                         "InvalidInternetGatewayID.NotFound")
        self.ec2.delete_vpc(VpcId=vid)

    def test_tags(self):
        vid = self.make_vpc()["VpcId"]
        self.ec2.create_tags(Resources=[vid], Tags=[{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "a"}])
        tags = self.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [vid]}])["Tags"]
        self.assertEqual([(t["Key"], t["Value"], t["ResourceType"]) for t in tags],
                         [("Name", "main", "vpc"), ("env", "dev", "vpc"), ("team", "a", "vpc")])
        # A value given must match for the tag to go.
        self.ec2.delete_tags(Resources=[vid], Tags=[{"Key": "env", "Value": "prod"}, {"Key": "team"}])
        tags = self.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [vid]}])["Tags"]
        self.assertEqual([t["Key"] for t in tags], ["Name", "env"])
        before = self.state()
        self.assertEqual(self.error(self.ec2.create_tags, Resources=["vpc-0123456789abcdef0"],
                                    Tags=[{"Key": "a", "Value": "b"}])[0], "InvalidID")
        self.assertEqual(self.error(self.ec2.create_tags, Resources=[vid], Tags=[{"Key": "aws:x", "Value": "b"}])[0],
                         "InvalidParameterValue")
        self.assertEqual(self.state(), before)


class RouteTables(Ec2Test):
    def test_tables_routes_and_associations(self):
        vid = self.make_vpc()["VpcId"]
        sn = self.ec2.create_subnet(VpcId=vid, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        igw = self.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        t = self.ec2.create_route_table(VpcId=vid)["RouteTable"]
        tid = t["RouteTableId"]
        self.assertEqual(t["Routes"], [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local",
                                        "Origin": "CreateRouteTable", "State": "active"}])
        def tables():
            return self.state(), self.ec2.describe_route_tables()["RouteTables"]
        before = tables()
        # Not attached to this VPC yet: refused.
        self.assertEqual(self.error(self.ec2.create_route, RouteTableId=tid, DestinationCidrBlock="0.0.0.0/0",
                                    GatewayId=igw)[0], "InvalidParameterValue")
        self.assertEqual(tables(), before)
        self.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vid)
        self.assertTrue(self.ec2.create_route(RouteTableId=tid, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)["Return"])
        before = tables()
        self.assertEqual(self.error(self.ec2.create_route, RouteTableId=tid, DestinationCidrBlock="0.0.0.0/0",
                                    GatewayId=igw), ("RouteAlreadyExists", "The route identified by 0.0.0.0/0 already exists."))
        self.assertEqual(self.error(self.ec2.create_route, RouteTableId=tid, DestinationCidrBlock="0.0.0.0/0",
                                    GatewayId="igw-0123456789abcdef0")[0], "InvalidGatewayID.NotFound")
        self.assertEqual(self.error(self.ec2.create_route, RouteTableId=tid, DestinationCidrBlock="0.0.0.0/0",
                                    NatGatewayId="nat-0123456789abcdef0")[0], "InvalidNatGatewayID.NotFound")
        self.assertEqual(self.error(self.ec2.delete_route, RouteTableId=tid, DestinationCidrBlock="10.0.0.0/16")[0],
                         "InvalidParameterValue")
        self.assertEqual(self.error(self.ec2.delete_route, RouteTableId=tid, DestinationCidrBlock="10.9.0.0/16"),
                         ("InvalidRoute.NotFound", "no route with destination-cidr-block 10.9.0.0/16 in route table %s" % tid))
        self.assertEqual(self.error(self.ec2.replace_route, RouteTableId=tid, DestinationCidrBlock="10.9.0.0/16",
                                    GatewayId=igw)[0], "InvalidRoute.NotFound")
        self.assertEqual(tables(), before)  # none of the refused calls changed anything
        self.ec2.replace_route(RouteTableId=tid, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)

        assoc = self.ec2.associate_route_table(RouteTableId=tid, SubnetId=sn)
        self.assertEqual(assoc["AssociationState"], {"State": "associated"})
        self.assertEqual(self.error(self.ec2.associate_route_table, RouteTableId=tid, SubnetId=sn)[0],
                         "Resource.AlreadyAssociated")
        found = self.ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [sn]}])["RouteTables"]
        self.assertEqual([x["RouteTableId"] for x in found], [tid])
        self.assertEqual(self.error(self.ec2.delete_route_table, RouteTableId=tid)[0], "DependencyViolation")
        self.ec2.disassociate_route_table(AssociationId=assoc["AssociationId"])
        self.assertEqual(self.error(self.ec2.disassociate_route_table, AssociationId=assoc["AssociationId"])[0],
                         "InvalidAssociationID.NotFound")
        self.ec2.delete_route(RouteTableId=tid, DestinationCidrBlock="0.0.0.0/0")
        self.ec2.delete_route_table(RouteTableId=tid)
        self.assertEqual(self.error(self.ec2.describe_route_tables, RouteTableIds=[tid])[0],
                         "InvalidRouteTableID.NotFound")
        main = self.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vid]}])["RouteTables"]
        self.assertEqual(self.error(self.ec2.delete_route_table, RouteTableId=main[0]["RouteTableId"])[0],
                         "DependencyViolation")


class SecurityGroups(Ec2Test):
    def test_groups_and_rules(self):
        vid = self.make_vpc()["VpcId"]
        web = self.ec2.create_security_group(VpcId=vid, GroupName="web", Description="web tier")
        db = self.ec2.create_security_group(VpcId=vid, GroupName="db", Description="db tier")["GroupId"]
        wid = web["GroupId"]
        self.assertRegex(wid, r"^sg-[0-9a-f]{17}$")
        g = self.ec2.describe_security_groups(GroupIds=[wid])["SecurityGroups"][0]
        self.assertEqual(g["IpPermissions"], [])
        self.assertEqual(g["IpPermissionsEgress"], [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                                                     "Ipv6Ranges": [], "PrefixListIds": [], "UserIdGroupPairs": []}])
        before = self.state(), self.ec2.describe_security_groups()["SecurityGroups"]
        self.assertEqual(self.error(self.ec2.create_security_group, VpcId=vid, GroupName="web", Description="x"),
                         ("InvalidGroup.Duplicate", "The security group 'web' already exists for VPC '%s'" % vid))
        self.assertEqual((self.state(), self.ec2.describe_security_groups()["SecurityGroups"]), before)

        r = self.ec2.authorize_security_group_ingress(GroupId=wid, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
             "IpRanges": [{"CidrIp": "10.0.0.0/16", "Description": "vpc"}]}])
        self.assertTrue(r["Return"])
        rule = r["SecurityGroupRules"][0]
        self.assertEqual((rule["IsEgress"], rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule["CidrIpv4"]),
                         (False, "tcp", 443, 443, "10.0.0.0/16"))
        self.ec2.authorize_security_group_ingress(GroupId=db, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": wid}]}])
        code, msg = self.error(self.ec2.authorize_security_group_ingress, GroupId=wid, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}])
        self.assertEqual(code, "InvalidPermission.Duplicate")
        self.assertIn("peer: 10.0.0.0/16, TCP, from port: 443, to port: 443, ALLOW", msg)
        for perm, want in [({"IpProtocol": "tcp", "FromPort": 443}, "InvalidParameterValue"),
                           ({"IpProtocol": "tcp", "FromPort": 10, "ToPort": 5, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
                            "InvalidParameterValue"),
                           ({"IpProtocol": "bogus", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}, "InvalidParameterValue"),
                           ({"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-0123456789abcdef0"}]},
                            "InvalidGroup.NotFound")]:
            self.assertEqual(self.error(self.ec2.authorize_security_group_ingress, GroupId=wid,
                                        IpPermissions=[perm])[0], want, perm)

        g = self.ec2.describe_security_groups(GroupIds=[db])["SecurityGroups"][0]
        self.assertEqual(g["IpPermissions"][0]["UserIdGroupPairs"], [{"GroupId": wid, "UserId": "000000000000"}])
        rules = self.ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [wid]}])["SecurityGroupRules"]
        self.assertEqual(sorted(x["IsEgress"] for x in rules), [False, True])
        # A group another group's rules name cannot go.
        self.assertEqual(self.error(self.ec2.delete_security_group, GroupId=wid)[0], "DependencyViolation")
        default = self.ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vid]},
                                                             {"Name": "group-name", "Values": ["default"]}])
        self.assertEqual(self.error(self.ec2.delete_security_group,
                                    GroupId=default["SecurityGroups"][0]["GroupId"])[0], "CannotDelete")

        # Revoke by permission and by rule id.
        self.ec2.revoke_security_group_ingress(GroupId=db, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": wid}]}])
        self.assertEqual(self.error(self.ec2.revoke_security_group_ingress, GroupId=db, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": wid}]}])[0],
            "InvalidPermission.NotFound")
        out = self.ec2.revoke_security_group_ingress(GroupId=wid, SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]])
        self.assertEqual(out["RevokedSecurityGroupRules"][0]["SecurityGroupRuleId"], rule["SecurityGroupRuleId"])
        egress = [x for x in rules if x["IsEgress"]][0]
        self.ec2.revoke_security_group_egress(GroupId=wid, SecurityGroupRuleIds=[egress["SecurityGroupRuleId"]])
        g = self.ec2.describe_security_groups(GroupIds=[wid])["SecurityGroups"][0]
        self.assertEqual((g["IpPermissions"], g["IpPermissionsEgress"]), ([], []))
        self.ec2.delete_security_group(GroupId=wid)
        self.ec2.delete_security_group(GroupId=db)
        self.assertEqual(self.error(self.ec2.describe_security_groups, GroupIds=[wid])[0], "InvalidGroup.NotFound")


class NetworkInterfaces(Ec2Test):
    def test_interfaces(self):
        vid = self.make_vpc()["VpcId"]
        sn = self.ec2.create_subnet(VpcId=vid, CidrBlock="10.0.1.0/28")["Subnet"]["SubnetId"]
        sg = self.ec2.create_security_group(VpcId=vid, GroupName="app", Description="app")["GroupId"]
        e = self.ec2.create_network_interface(SubnetId=sn, Groups=[sg], Description="task", TagSpecifications=[
            {"ResourceType": "network-interface", "Tags": [{"Key": "k", "Value": "v"}]}])["NetworkInterface"]
        self.assertRegex(e["NetworkInterfaceId"], r"^eni-[0-9a-f]{17}$")
        self.assertEqual((e["PrivateIpAddress"], e["PrivateDnsName"], e["Groups"], e["TagSet"], e["VpcId"]),
                         ("10.0.1.4", "ip-10-0-1-4.ec2.internal", [{"GroupId": sg, "GroupName": "app"}],
                          [{"Key": "k", "Value": "v"}], vid))
        self.assertRegex(e["MacAddress"], r"^02(:[0-9a-f]{2}){5}$")
        d = self.ec2.create_network_interface(SubnetId=sn)["NetworkInterface"]
        self.assertEqual(d["PrivateIpAddress"], "10.0.1.5")
        self.assertEqual([g["GroupName"] for g in d["Groups"]], ["default"])
        fixed = self.ec2.create_network_interface(SubnetId=sn, PrivateIpAddress="10.0.1.9")["NetworkInterface"]
        self.assertEqual(fixed["PrivateIpAddress"], "10.0.1.9")
        subnet = self.ec2.describe_subnets(SubnetIds=[sn])["Subnets"][0]
        self.assertEqual(subnet["AvailableIpAddressCount"], 11 - 3)

        before = self.state()
        for ip, code in [("10.0.1.9", "InvalidIPAddress.InUse"), ("10.0.1.2", "InvalidParameterValue"),
                         ("10.0.1.15", "InvalidParameterValue"), ("10.0.2.4", "InvalidParameterValue")]:
            self.assertEqual(self.error(self.ec2.create_network_interface, SubnetId=sn, PrivateIpAddress=ip)[0], code, ip)
        self.assertEqual(self.error(self.ec2.create_network_interface, SubnetId=sn,
                                    Groups=["sg-0123456789abcdef0"])[0], "InvalidGroup.NotFound")
        self.assertEqual(self.error(self.ec2.delete_subnet, SubnetId=sn)[0], "DependencyViolation")
        self.assertEqual(self.error(self.ec2.delete_security_group, GroupId=sg)[0], "DependencyViolation")
        self.assertEqual(self.state(), before)

        listed = self.ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [sg]}])["NetworkInterfaces"]
        self.assertEqual([x["NetworkInterfaceId"] for x in listed], [e["NetworkInterfaceId"]])
        by_tag = self.ec2.describe_network_interfaces(Filters=[{"Name": "tag:k", "Values": ["v"]}])["NetworkInterfaces"]
        self.assertEqual(len(by_tag), 1)
        for x in (e, d, fixed):
            self.ec2.delete_network_interface(NetworkInterfaceId=x["NetworkInterfaceId"])
        self.assertEqual(self.error(self.ec2.delete_network_interface, NetworkInterfaceId=e["NetworkInterfaceId"]),
                         ("InvalidNetworkInterfaceID.NotFound",
                          "The networkInterface ID '%s' does not exist" % e["NetworkInterfaceId"]))
        self.assertEqual(self.ec2.describe_subnets(SubnetIds=[sn])["Subnets"][0]["AvailableIpAddressCount"], 11)
        self.ec2.delete_subnet(SubnetId=sn)


class AddressesAndNat(Ec2Test):
    def test_eips_and_nat_gateway_records(self):
        vid = self.make_vpc()["VpcId"]
        sn = self.ec2.create_subnet(VpcId=vid, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        a = self.ec2.allocate_address(Domain="vpc")
        b = self.ec2.allocate_address(Domain="vpc")
        self.assertRegex(a["AllocationId"], r"^eipalloc-[0-9a-f]{17}$")
        self.assertNotEqual(a["PublicIp"], b["PublicIp"])
        self.assertTrue(a["PublicIp"].startswith("198.19."))
        nat = self.ec2.create_nat_gateway(SubnetId=sn, AllocationId=a["AllocationId"])["NatGateway"]
        self.assertEqual((nat["State"], nat["VpcId"], nat["NatGatewayAddresses"][0]["PublicIp"]),
                         ("pending", vid, a["PublicIp"]))
        eni = nat["NatGatewayAddresses"][0]["NetworkInterfaceId"]
        e = self.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
        self.assertEqual((e["InterfaceType"], e["RequesterManaged"], e["PrivateIpAddress"]), ("natGateway", True, "10.0.0.4"))
        got = self.ec2.describe_addresses(AllocationIds=[a["AllocationId"]])["Addresses"][0]
        self.assertEqual((got["NetworkInterfaceId"], got["PrivateIpAddress"]), (eni, "10.0.0.4"))
        self.assertEqual(self.ec2.describe_addresses(PublicIps=[b["PublicIp"]])["Addresses"][0]["AllocationId"],
                         b["AllocationId"])
        attr = self.ec2.describe_addresses_attribute(AllocationIds=[a["AllocationId"]], Attribute="domain-name")
        self.assertEqual(attr["Addresses"][0]["PublicIp"], a["PublicIp"])
        listed = self.ec2.describe_nat_gateways(Filter=[{"Name": "vpc-id", "Values": [vid]}])["NatGateways"]
        self.assertEqual([n["NatGatewayId"] for n in listed], [nat["NatGatewayId"]])
        before = self.state()
        self.assertEqual(self.error(self.ec2.release_address, AllocationId=a["AllocationId"])[0], "InvalidIPAddress.InUse")
        self.assertEqual(self.error(self.ec2.create_nat_gateway, SubnetId=sn, AllocationId=a["AllocationId"])[0],
                         "Resource.AlreadyAssociated")
        self.assertEqual(self.error(self.ec2.create_nat_gateway, SubnetId=sn,
                                    AllocationId="eipalloc-0123456789abcdef0")[0], "InvalidAllocationID.NotFound")
        self.assertEqual(self.error(self.ec2.delete_subnet, SubnetId=sn)[0], "DependencyViolation")
        # The NAT gateway's own ENI is not the user's to delete.
        self.assertEqual(self.error(self.ec2.delete_network_interface, NetworkInterfaceId=eni)[0], "OperationNotPermitted")
        self.assertEqual(self.state(), before)
        self.ec2.release_address(AllocationId=b["AllocationId"])
        self.assertEqual(self.error(self.ec2.release_address, AllocationId=b["AllocationId"])[0],
                         "InvalidAllocationID.NotFound")
        self.assertEqual(self.ec2.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])["NatGatewayId"], nat["NatGatewayId"])


class Clis(Ec2Test):
    def test_both_clis(self):
        for v in (1, 2):
            vpc = self.pierd.cli_json(v, "ec2", "create-vpc", "--cidr-block", "10.%d.0.0/16" % v)["Vpc"]
            sn = self.pierd.cli_json(v, "ec2", "create-subnet", "--vpc-id", vpc["VpcId"],
                                     "--cidr-block", "10.%d.1.0/24" % v)["Subnet"]
            self.assertEqual(sn["AvailableIpAddressCount"], 251)
            listed = self.pierd.cli_json(v, "ec2", "describe-subnets", "--filters",
                                         "Name=vpc-id,Values=%s" % vpc["VpcId"])["Subnets"]
            self.assertEqual([s["SubnetId"] for s in listed], [sn["SubnetId"]])
            p = self.pierd.cli(v, "ec2", "create-subnet", "--vpc-id", vpc["VpcId"], "--cidr-block",
                               "10.%d.1.0/25" % v, check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("InvalidSubnet.Conflict", p.stderr)


if __name__ == "__main__":
    unittest.main()

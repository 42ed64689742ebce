#include "aws/protocol.h"

#include <gtest/gtest.h>

#include <set>

#include "aws/xml.h"

namespace pier::aws {
namespace {

namespace bhttp = boost::beast::http;

const ServiceModel& model(const std::string& id) {
  static std::map<std::string, std::unique_ptr<ServiceModel>> cache;
  auto& m = cache[id];
  if (!m) {
    auto r = ServiceModel::load_file(id, std::string(PIER_MODEL_DIR) + "/" + id + ".json");
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    m = std::move(r).value();
  }
  return *m;
}

http::Request make(bhttp::verb verb, std::string target, std::string body,
                   std::vector<std::pair<std::string, std::string>> headers = {}) {
  http::Request r{verb, target, 11};
  for (auto& [k, v] : headers) r.set(k, v);
  r.body() = std::move(body);
  r.prepare_payload();
  return r;
}

struct Decoded {
  Result<const Operation*> op = Error::internal("unset");
  Result<json::object> doc = Error::internal("unset");
};

Decoded decode(const ServiceModel& m, http::Request& req) {
  Url url = split_target(req.target());
  auto form = req[bhttp::field::content_type].find("x-www-form-urlencoded") != std::string_view::npos
                  ? parse_form(req.body())
                  : std::multimap<std::string, std::string>{};
  Decoded d;
  d.op = resolve_operation(m, req, url, form);
  if (d.op.ok()) d.doc = decode_input(m, **d.op, req, url, form);
  return d;
}

http::Request ecs(std::string action, std::string body) {
  return make(bhttp::verb::post, "/", std::move(body),
              {{"X-Amz-Target", "AmazonEC2ContainerServiceV20141113." + action},
               {"Content-Type", "application/x-amz-json-1.1"}});
}

TEST(JsonProtocol, DecodesByTarget) {
  auto req = ecs("CreateCluster", R"({"clusterName":"a","tags":[{"key":"k","value":"v"}],"bogus":1})");
  auto d = decode(model("ecs"), req);
  ASSERT_TRUE(d.op.ok());
  EXPECT_EQ((*d.op)->name, "CreateCluster");
  ASSERT_TRUE(d.doc.ok()) << d.doc.error().message;
  EXPECT_EQ(d.doc->at("clusterName").as_string(), "a");
  EXPECT_FALSE(d.doc->contains("bogus"));  // unknown members are ignored
}

TEST(JsonProtocol, UnknownTargetIsUnknownOperation) {
  auto req = ecs("FlyToTheMoon", "{}");
  auto d = decode(model("ecs"), req);
  ASSERT_FALSE(d.op.ok());
  EXPECT_EQ(d.op.error().code, "UnknownOperation");
}

TEST(JsonProtocol, MalformedBodyIsSerializationException) {
  auto req = ecs("CreateCluster", R"({"clusterName":)");
  auto d = decode(model("ecs"), req);
  ASSERT_FALSE(d.doc.ok());
  EXPECT_EQ(d.doc.error().code, "SerializationException");
}

TEST(JsonProtocol, WrongTypeIsSerializationException) {
  auto req = ecs("ListClusters", R"({"maxResults":"ten"})");
  auto d = decode(model("ecs"), req);
  ASSERT_FALSE(d.doc.ok());
  EXPECT_EQ(d.doc.error().code, "SerializationException");
}

TEST(JsonProtocol, MissingRequiredMemberIsValidationException) {
  auto req = ecs("RegisterTaskDefinition", R"({"family":"x"})");
  auto d = decode(model("ecs"), req);
  ASSERT_FALSE(d.doc.ok());
  EXPECT_EQ(d.doc.error().code, "ValidationException");
  EXPECT_NE(d.doc.error().message.find("containerDefinitions"), std::string::npos);
}

TEST(JsonProtocol, EnumIsValidated) {
  auto req = ecs("DescribeClusters", R"({"include":["NOPE"]})");
  auto d = decode(model("ecs"), req);
  ASSERT_FALSE(d.doc.ok());
  EXPECT_EQ(d.doc.error().code, "ValidationException");
}

TEST(JsonProtocol, EncodesErrorsWithType) {
  auto res = encode_error(Protocol::kJson, &model("ecs"),
                          Error::not_found("ClusterNotFoundException", "Cluster not found."), "rid", 11);
  EXPECT_EQ(res.result_int(), 400u);
  EXPECT_EQ(res["x-amzn-RequestId"], "rid");
  auto body = json::parse(res.body()).as_object();
  EXPECT_EQ(body["__type"].as_string(), "ClusterNotFoundException");
}

http::Request form(std::string body) {
  return make(bhttp::verb::post, "/", std::move(body),
              {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}});
}

TEST(QueryProtocol, DecodesMembersListsAndNesting) {
  auto req = form("Action=CreateRole&Version=2010-05-08&RoleName=r&AssumeRolePolicyDocument=%7B%7D"
                  "&Tags.member.1.Key=a&Tags.member.1.Value=1&Tags.member.2.Key=b&Tags.member.2.Value=2"
                  "&MaxSessionDuration=7200");
  auto d = decode(model("iam"), req);
  ASSERT_TRUE(d.doc.ok()) << d.doc.error().message;
  EXPECT_EQ(d.doc->at("RoleName").as_string(), "r");
  EXPECT_EQ(d.doc->at("AssumeRolePolicyDocument").as_string(), "{}");
  EXPECT_EQ(d.doc->at("MaxSessionDuration").as_int64(), 7200);
  ASSERT_EQ(d.doc->at("Tags").as_array().size(), 2u);
  EXPECT_EQ(d.doc->at("Tags").as_array()[1].as_object().at("Value").as_string(), "2");
}

TEST(QueryProtocol, MissingRequiredIsValidationError) {
  auto req = form("Action=CreateRole&Version=2010-05-08&AssumeRolePolicyDocument=%7B%7D");
  auto d = decode(model("iam"), req);
  ASSERT_FALSE(d.doc.ok());
  EXPECT_EQ(d.doc.error().code, "ValidationError");
  EXPECT_NE(d.doc.error().message.find("'roleName'"), std::string::npos) << d.doc.error().message;
}

TEST(QueryProtocol, UnknownActionIsInvalidAction) {
  auto req = form("Action=Teleport&Version=2011-06-15");
  auto d = decode(model("sts"), req);
  ASSERT_FALSE(d.op.ok());
  auto res = encode_error(Protocol::kQuery, &model("sts"), d.op.error(), "rid", 11);
  EXPECT_EQ(res.result_int(), 400u);
  auto x = xml::parse(res.body());
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(x->child("Error")->child("Code")->text, "InvalidAction");
  EXPECT_EQ(x->child("RequestId")->text, "rid");
}

TEST(QueryProtocol, WrongTypeIsValidationError) {
  auto req = form("Action=CreateRole&Version=2010-05-08&RoleName=r&AssumeRolePolicyDocument=%7B%7D&MaxSessionDuration=long");
  auto d = decode(model("iam"), req);
  ASSERT_FALSE(d.doc.ok());
  EXPECT_EQ(d.doc.error().code, "ValidationError");
}

TEST(QueryProtocol, EncodesResultWrapperAndMetadata) {
  const auto& m = model("sts");
  auto res = encode_output(m, *m.find_operation("GetCallerIdentity"),
                           json::object{{"UserId", "u"}, {"Account", "000000000000"}, {"Arn", "arn:x"}},
                           "rid", 11);
  auto x = xml::parse(res.body());
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(x->name, "GetCallerIdentityResponse");
  EXPECT_EQ(x->child("GetCallerIdentityResult")->child("Account")->text, "000000000000");
  EXPECT_EQ(x->child("ResponseMetadata")->child("RequestId")->text, "rid");
}

TEST(QueryProtocol, EncodesListsAsMembersAndTimestampsAsIso) {
  const auto& m = model("iam");
  json::object role{{"Path", "/"}, {"RoleName", "r"}, {"RoleId", "AROA1"}, {"Arn", "arn:aws:iam::0:role/r"},
                    {"CreateDate", 1764576000.5}};
  auto res = encode_output(m, *m.find_operation("ListRoles"),
                           json::object{{"Roles", json::array{role}}, {"IsTruncated", false}}, "rid", 11);
  auto x = xml::parse(res.body());
  ASSERT_TRUE(x.ok());
  const auto* member = x->child("ListRolesResult")->child("Roles")->child("member");
  ASSERT_NE(member, nullptr);
  EXPECT_EQ(member->child("CreateDate")->text, "2025-12-01T08:00:00.500Z");
  EXPECT_EQ(x->child("ListRolesResult")->child("IsTruncated")->text, "false");
}

TEST(Ec2Protocol, DecodesFiltersAndIdLists) {
  auto req = form("Action=DescribeVpcs&Version=2016-11-15&VpcId.1=vpc-1&VpcId.2=vpc-2"
                  "&Filter.1.Name=tag%3AName&Filter.1.Value.1=demo&Filter.1.Value.2=other");
  auto d = decode(model("ec2"), req);
  ASSERT_TRUE(d.doc.ok()) << d.doc.error().message;
  ASSERT_EQ(d.doc->at("VpcIds").as_array().size(), 2u);
  const auto& f = d.doc->at("Filters").as_array()[0].as_object();
  EXPECT_EQ(f.at("Name").as_string(), "tag:Name");
  EXPECT_EQ(f.at("Values").as_array().size(), 2u);
}

TEST(Ec2Protocol, MissingRequiredIsMissingParameter) {
  auto req = form("Action=CreateVpc&Version=2016-11-15&AmazonProvidedIpv6CidrBlock=maybe");
  auto d = decode(model("ec2"), req);
  ASSERT_FALSE(d.doc.ok());
  EXPECT_EQ(d.doc.error().code, "InvalidParameterValue");
  auto req2 = form("Action=DeleteVpc&Version=2016-11-15");
  auto d2 = decode(model("ec2"), req2);
  ASSERT_FALSE(d2.doc.ok());
  EXPECT_EQ(d2.doc.error().code, "MissingParameter");
}

TEST(Ec2Protocol, EncodesItemsAndRequestId) {
  const auto& m = model("ec2");
  json::object vpc{{"VpcId", "vpc-1"}, {"CidrBlock", "10.0.0.0/16"}, {"State", "available"}};
  auto res = encode_output(m, *m.find_operation("DescribeVpcs"), json::object{{"Vpcs", json::array{vpc}}},
                           "rid", 11);
  auto x = xml::parse(res.body());
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(x->name, "DescribeVpcsResponse");
  EXPECT_EQ(x->child("requestId")->text, "rid");
  EXPECT_EQ(x->child("vpcSet")->child("item")->child("vpcId")->text, "vpc-1");
}

TEST(Ec2Protocol, ErrorShape) {
  auto res = encode_error(Protocol::kEc2, &model("ec2"),
                          Error::not_found("InvalidVpcID.NotFound", "The vpc ID 'vpc-1' does not exist"), "rid", 11);
  auto x = xml::parse(res.body());
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(x->name, "Response");
  EXPECT_EQ(x->child("Errors")->child("Error")->child("Code")->text, "InvalidVpcID.NotFound");
  EXPECT_EQ(x->child("RequestID")->text, "rid");
}

// retain() drops what no served operation reaches, and what stays still
// decodes and encodes as before; an operation not served still routes.
TEST(ModelRetain, KeepsWhatServedOperationsReachAndRoutesTheRest) {
  auto r = ServiceModel::load_file("ec2", std::string(PIER_MODEL_DIR) + "/ec2.json");
  ASSERT_TRUE(r.ok());
  auto& m = **r;
  size_t all = m.shapes.size();
  m.retain({"DescribeVpcs", "CreateVpc"});
  EXPECT_LT(m.shapes.size(), all / 10);
  // Every shape still referenced is one that was kept.
  std::set<const Shape*> kept;
  for (const auto& [name, s] : m.shapes) kept.insert(s.get());
  for (const auto& [name, s] : m.shapes) {
    for (const auto& mem : s->members) EXPECT_TRUE(kept.count(mem.shape)) << name << "." << mem.name;
    for (const Member* mem : {&s->member, &s->key, &s->value})
      EXPECT_TRUE(!mem->shape || kept.count(mem->shape)) << name;
  }
  auto req = form("Action=DescribeVpcs&Version=2016-11-15&VpcId.1=vpc-1&Filter.1.Name=cidr&Filter.1.Value.1=x");
  auto d = decode(m, req);
  ASSERT_TRUE(d.doc.ok()) << d.doc.error().message;
  EXPECT_EQ(d.doc->at("VpcIds").as_array().size(), 1u);
  auto res = encode_output(m, *m.find_operation("DescribeVpcs"),
                           json::object{{"Vpcs", json::array{json::object{{"VpcId", "vpc-1"}}}}}, "rid", 11);
  EXPECT_NE(res.body().find("<vpcId>vpc-1</vpcId>"), std::string::npos) << res.body();
  auto other = form("Action=RunInstances&Version=2016-11-15&ImageId=ami-1&MinCount=1&MaxCount=1");
  auto run = decode(m, other);
  ASSERT_TRUE(run.op.ok());
  EXPECT_EQ((*run.op)->name, "RunInstances");
  EXPECT_EQ((*run.op)->input, nullptr);
}

TEST(RestJsonProtocol, RoutesByMethodAndPathWithLabels) {
  auto req = make(bhttp::verb::post, "/2015-03-31/functions/my-fn/invocations?Qualifier=live",
                  R"({"hello":"world"})", {{"X-Amz-Invocation-Type", "Event"}});
  auto d = decode(model("lambda"), req);
  ASSERT_TRUE(d.op.ok());
  EXPECT_EQ((*d.op)->name, "Invoke");
  ASSERT_TRUE(d.doc.ok()) << d.doc.error().message;
  EXPECT_EQ(d.doc->at("FunctionName").as_string(), "my-fn");
  EXPECT_EQ(d.doc->at("Qualifier").as_string(), "live");
  EXPECT_EQ(d.doc->at("InvocationType").as_string(), "Event");
  EXPECT_EQ(d.doc->at("Payload").as_string(), R"({"hello":"world"})");
}

TEST(RestJsonProtocol, BodyMembersAndErrors) {
  auto req = make(bhttp::verb::post, "/2015-03-31/functions", R"({"FunctionName":"f","Role":7})");
  auto d = decode(model("lambda"), req);
  ASSERT_TRUE(d.op.ok());
  EXPECT_EQ((*d.op)->name, "CreateFunction");
  ASSERT_FALSE(d.doc.ok());
  EXPECT_EQ(d.doc.error().code, "SerializationException");
  auto res = encode_error(Protocol::kRestJson, &model("lambda"),
                          Error::not_found("ResourceNotFoundException", "Function not found"), "rid", 11);
  EXPECT_EQ(res["x-amzn-ErrorType"], "ResourceNotFoundException");
  EXPECT_EQ(res.result_int(), 404u);  // from the model's httpStatusCode
}

TEST(RestXmlProtocol, GreedyKeyHeadersAndQueryRouting) {
  auto req = make(bhttp::verb::put, "/bucket/dir/a%20b.txt", "data",
                  {{"x-amz-meta-colour", "blue"}, {"Content-Type", "text/plain"}});
  auto d = decode(model("s3"), req);
  ASSERT_TRUE(d.op.ok());
  EXPECT_EQ((*d.op)->name, "PutObject");
  ASSERT_TRUE(d.doc.ok()) << d.doc.error().message;
  EXPECT_EQ(d.doc->at("Bucket").as_string(), "bucket");
  EXPECT_EQ(d.doc->at("Key").as_string(), "dir/a b.txt");
  EXPECT_EQ(d.doc->at("Metadata").as_object().at("colour").as_string(), "blue");
  EXPECT_EQ(d.doc->at("Body").as_string(), "data");

  auto list = make(bhttp::verb::get, "/bucket?list-type=2&prefix=dir%2F", "");
  auto l = decode(model("s3"), list);
  ASSERT_TRUE(l.op.ok());
  EXPECT_EQ((*l.op)->name, "ListObjectsV2");
  ASSERT_TRUE(l.doc.ok());
  EXPECT_EQ(l.doc->at("Prefix").as_string(), "dir/");
}

TEST(RestXmlProtocol, XmlBodyAndErrorShape) {
  auto req = make(bhttp::verb::put, "/bucket",
                  "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                  "<LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>");
  auto d = decode(model("s3"), req);
  ASSERT_TRUE(d.op.ok());
  EXPECT_EQ((*d.op)->name, "CreateBucket");
  ASSERT_TRUE(d.doc.ok()) << d.doc.error().message;
  EXPECT_EQ(d.doc->at("CreateBucketConfiguration").as_object().at("LocationConstraint").as_string(), "eu-west-1");

  auto bad = make(bhttp::verb::put, "/bucket", "<CreateBucketConfiguration><oops");
  auto b = decode(model("s3"), bad);
  ASSERT_FALSE(b.doc.ok());
  EXPECT_EQ(b.doc.error().code, "MalformedXML");
  auto res = encode_error(Protocol::kRestXml, &model("s3"), b.doc.error(), "rid", 11);
  auto x = xml::parse(res.body());
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(x->name, "Error");
  EXPECT_EQ(x->child("Code")->text, "MalformedXML");
  EXPECT_EQ(res["x-amz-request-id"], "rid");
}

}  // namespace
}  // namespace pier::aws

// EC2's resources in the store: one row per object (VPC, subnet, route table,
// gateway, security group, …) holding its Describe document, tags apart, in
// one table (ec2_objects) that the network controller reads as desired
// state. Members starting with "_" are pier's own and never leave pierd.
#pragma once

#include <boost/json.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "store/db.h"

namespace pier::svc::ec2 {

namespace json = boost::json;

struct Scope {
  std::string account, region;
};

struct Object {
  std::string id, type, vpc_id;
  json::object doc;
};

Result<std::optional<Object>> load(store::Db& db, const Scope& s, const std::string& id);
// All objects of a type, optionally only those of one VPC, in id order.
Result<std::vector<Object>> load_all(store::Db& db, const Scope& s, const std::string& type,
                                     const std::string& vpc_id = {});
Status save(store::Db& db, const Scope& s, const Object& o);
Status erase(store::Db& db, const Scope& s, const std::string& id);  // with its tags

// Tags: {Key, Value} lists as EC2 spells them.
Status put_tags(store::Db& db, const Scope& s, const std::string& id, const json::array& tags);
Status delete_tags(store::Db& db, const Scope& s, const std::string& id, const json::array& tags);
Result<json::array> tags_of(store::Db& db, const Scope& s, const std::string& id);
// Every tag of the scope: (id, key, value).
Result<std::vector<std::array<std::string, 3>>> all_tags(store::Db& db, const Scope& s);

// The resource type EC2 names for an id's prefix ("vpc-…" → "vpc").
std::string resource_type(const std::string& id);

// Filter.N: a map from filter name to the values an object has for it;
// tag:KEY, tag-key and tag-value work for every type.
using FilterFields = std::map<std::string, std::function<std::vector<std::string>(const json::object&)>>;
// InvalidParameterValue for a filter name the type does not know.
Status check_filters(const json::object& input, const FilterFields& fields);
// doc must carry its Tags.
bool matches(const json::object& input, const FilterFields& fields, const json::object& doc);
// AWS's glob: * and ?.
bool glob(std::string_view pattern, std::string_view s);

// The public view: doc without pier's "_" members.
json::object view(const json::object& doc);

}  // namespace pier::svc::ec2

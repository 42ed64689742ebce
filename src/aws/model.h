// AWS service models (botocore's JSON, reduced by tools/gen_models.py) as the
// codecs use them: operations, shapes, members and their serialization traits.
// Loaded once at start; immutable afterwards, so shared freely across threads.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/error.h"

namespace pier::aws {

enum class Protocol { kJson, kQuery, kEc2, kRestXml, kRestJson };
std::string_view protocol_name(Protocol p);

struct Shape;

struct Member {
  std::string name;
  const Shape* shape = nullptr;
  std::string location;       // "", "uri", "querystring", "header", "headers", "statusCode"
  std::string location_name;  // wire name (header name, XML element, query key)
  std::string query_name;     // EC2 only
  bool flattened = false;
  bool xml_attribute = false;
  bool idempotency_token = false;
  bool event_payload = false;
};

struct Shape {
  std::string name;
  std::string type;  // structure list map string integer long float double boolean timestamp blob
  // structure
  std::vector<Member> members;
  std::set<std::string> required;
  std::string payload;  // rest protocols: the member that is the body
  bool exception = false;
  int error_status = 0;
  std::string error_code;  // "error": {"code": ...} where it differs from the shape name
  bool sender_fault = true;
  // list
  Member member;
  // map
  Member key, value;
  bool flattened = false;
  // string / number constraints
  std::vector<std::string> enums;
  std::optional<double> min, max;
  std::string timestamp_format;
  std::string location_name;
  std::string xml_namespace;
  bool streaming = false;
  bool sensitive = false;

  const Member* find_member(std::string_view member_name) const;
  // Built once the members are known (find_member uses it for larger shapes).
  std::unordered_map<std::string_view, size_t> member_index;
};

struct Operation {
  std::string name;
  std::string http_method = "POST";
  std::string request_uri = "/";
  int response_code = 200;
  const Shape* input = nullptr;
  const Shape* output = nullptr;
  std::string result_wrapper;  // query protocol: <OpResult>
  std::vector<const Shape*> errors;
};

struct ServiceModel {
  std::string id;  // file name: "ecs", "iam"
  Protocol protocol = Protocol::kJson;
  std::string json_version;
  std::string target_prefix;
  std::string signing_name;
  std::string endpoint_prefix;
  std::string xml_namespace;
  std::string api_version;
  std::string service_id;
  std::map<std::string, Operation, std::less<>> operations;
  std::unordered_map<std::string, std::unique_ptr<Shape>> shapes;
  // Exceptions by code, for status lookup.
  std::unordered_map<std::string, const Shape*> errors_by_code;

  const Operation* find_operation(std::string_view name) const;
  // Keeps the shapes that the `served` operations (and every exception)
  // reach, and drops the rest: EC2's model has 4014 shapes for some 600
  // operations, of which pier serves a few dozen. Operations not served stay
  // known by name and route (so that they are answered as not implemented);
  // their input, output and errors go, except for the REST protocols, where
  // the input's required headers tell operations on one path apart.
  void retain(const std::set<std::string, std::less<>>& served);
  static Result<std::unique_ptr<ServiceModel>> parse(std::string id, std::string_view json_text);
  static Result<std::unique_ptr<ServiceModel>> load_file(std::string id, const std::string& path);
};

// Where the models live: --models, else $PIER_MODELS, else ../share/pier/models
// beside the running executable.
std::string default_model_dir();

}  // namespace pier::aws

#include "aws/model.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_set>

namespace pier::aws {

namespace json = boost::json;

std::string_view protocol_name(Protocol p) {
  switch (p) {
    case Protocol::kJson: return "json";
    case Protocol::kQuery: return "query";
    case Protocol::kEc2: return "ec2";
    case Protocol::kRestXml: return "rest-xml";
    case Protocol::kRestJson: return "rest-json";
  }
  return "json";
}

const Member* Shape::find_member(std::string_view member_name) const {
  if (!member_index.empty()) {
    auto it = member_index.find(member_name);
    return it == member_index.end() ? nullptr : &members[it->second];
  }
  for (const auto& m : members)
    if (m.name == member_name) return &m;
  return nullptr;
}

const Operation* ServiceModel::find_operation(std::string_view name) const {
  auto it = operations.find(name);
  return it == operations.end() ? nullptr : &it->second;
}

namespace {

std::string str_of(const json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key); v && v->is_string()) return std::string(v->as_string());
  return {};
}
bool bool_of(const json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key); v && v->is_bool()) return v->as_bool();
  return false;
}
std::optional<double> num_of(const json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key)) {
    if (v->is_int64()) return static_cast<double>(v->as_int64());
    if (v->is_uint64()) return static_cast<double>(v->as_uint64());
    if (v->is_double()) return v->as_double();
  }
  return std::nullopt;
}

Shape* shape_ref(ServiceModel& m, const std::string& name) {
  auto it = m.shapes.find(name);
  return it == m.shapes.end() ? nullptr : it->second.get();
}

Result<Member> member_of(ServiceModel& m, std::string name, const json::object& ref) {
  Member mem;
  mem.name = std::move(name);
  std::string target = str_of(ref, "shape");
  mem.shape = shape_ref(m, target);
  if (!mem.shape) return Error::internal(fmt::format("model {}: unknown shape '{}'", m.id, target));
  mem.location = str_of(ref, "location");
  mem.location_name = str_of(ref, "locationName");
  mem.query_name = str_of(ref, "queryName");
  mem.flattened = bool_of(ref, "flattened");
  mem.xml_attribute = bool_of(ref, "xmlAttribute");
  mem.idempotency_token = bool_of(ref, "idempotencyToken");
  mem.event_payload = bool_of(ref, "eventpayload");
  return mem;
}

}  // namespace

Result<std::unique_ptr<ServiceModel>> ServiceModel::parse(std::string id,
                                                          std::string_view json_text) {
  boost::system::error_code ec;
  json::value root = json::parse(json_text, ec);
  if (ec || !root.is_object()) return Error::internal("model " + id + ": not JSON");
  auto m = std::make_unique<ServiceModel>();
  m->id = std::move(id);
  const auto& obj = root.as_object();
  const auto* meta = obj.if_contains("metadata");
  if (!meta || !meta->is_object()) return Error::internal("model " + m->id + ": no metadata");
  const auto& md = meta->as_object();
  std::string proto = str_of(md, "protocol");
  if (proto == "json") m->protocol = Protocol::kJson;
  else if (proto == "query") m->protocol = Protocol::kQuery;
  else if (proto == "ec2") m->protocol = Protocol::kEc2;
  else if (proto == "rest-xml") m->protocol = Protocol::kRestXml;
  else if (proto == "rest-json") m->protocol = Protocol::kRestJson;
  else return Error::internal("model " + m->id + ": unknown protocol " + proto);
  m->json_version = str_of(md, "jsonVersion");
  m->target_prefix = str_of(md, "targetPrefix");
  m->endpoint_prefix = str_of(md, "endpointPrefix");
  m->signing_name = str_of(md, "signingName");
  if (m->signing_name.empty()) m->signing_name = m->endpoint_prefix;
  m->xml_namespace = str_of(md, "xmlNamespace");
  m->api_version = str_of(md, "apiVersion");
  m->service_id = str_of(md, "serviceId");

  const auto* shapes = obj.if_contains("shapes");
  if (!shapes || !shapes->is_object()) return Error::internal("model " + m->id + ": no shapes");
  // Two passes: create every shape, then resolve references between them.
  for (const auto& [name, _] : shapes->as_object()) {
    auto s = std::make_unique<Shape>();
    s->name = std::string(name);
    m->shapes.emplace(s->name, std::move(s));
  }
  for (const auto& [name, val] : shapes->as_object()) {
    if (!val.is_object()) continue;
    const auto& so = val.as_object();
    Shape& s = *m->shapes[std::string(name)];
    s.type = str_of(so, "type");
    s.payload = str_of(so, "payload");
    s.exception = bool_of(so, "exception");
    s.flattened = bool_of(so, "flattened");
    s.timestamp_format = str_of(so, "timestampFormat");
    s.location_name = str_of(so, "locationName");
    s.streaming = bool_of(so, "streaming");
    s.sensitive = bool_of(so, "sensitive");
    s.min = num_of(so, "min");
    s.max = num_of(so, "max");
    if (auto* e = so.if_contains("enum"); e && e->is_array())
      for (const auto& v : e->as_array())
        if (v.is_string()) s.enums.emplace_back(v.as_string());
    if (auto* e = so.if_contains("error"); e && e->is_object()) {
      const auto& eo = e->as_object();
      if (auto st = num_of(eo, "httpStatusCode")) s.error_status = static_cast<int>(*st);
      s.error_code = str_of(eo, "code");
      s.sender_fault = bool_of(eo, "senderFault") || !eo.contains("senderFault");
    }
    if (auto* x = so.if_contains("xmlNamespace"); x && x->is_object())
      s.xml_namespace = str_of(x->as_object(), "uri");
    if (auto* req = so.if_contains("required"); req && req->is_array())
      for (const auto& r : req->as_array())
        if (r.is_string()) s.required.emplace(r.as_string());
    if (auto* mem = so.if_contains("members"); mem && mem->is_object()) {
      for (const auto& [mname, mref] : mem->as_object()) {
        if (!mref.is_object()) continue;
        PIER_ASSIGN(Member mm, member_of(*m, std::string(mname), mref.as_object()));
        s.members.push_back(std::move(mm));
      }
    }
    if (auto* mem = so.if_contains("member"); mem && mem->is_object()) {
      PIER_ASSIGN(s.member, member_of(*m, "member", mem->as_object()));
    }
    if (auto* k = so.if_contains("key"); k && k->is_object()) {
      PIER_ASSIGN(s.key, member_of(*m, "key", k->as_object()));
    }
    if (auto* v = so.if_contains("value"); v && v->is_object()) {
      PIER_ASSIGN(s.value, member_of(*m, "value", v->as_object()));
    }
  }
  for (auto& [name, s] : m->shapes) {
    if (s->members.size() > 8)
      for (size_t i = 0; i < s->members.size(); ++i) s->member_index[s->members[i].name] = i;
    if (!s->exception) continue;
    m->errors_by_code[s->error_code.empty() ? name : s->error_code] = s.get();
  }

  const auto* ops = obj.if_contains("operations");
  if (!ops || !ops->is_object()) return Error::internal("model " + m->id + ": no operations");
  for (const auto& [name, val] : ops->as_object()) {
    if (!val.is_object()) continue;
    const auto& oo = val.as_object();
    Operation op;
    op.name = std::string(name);
    if (auto* h = oo.if_contains("http"); h && h->is_object()) {
      const auto& ho = h->as_object();
      if (auto v = str_of(ho, "method"); !v.empty()) op.http_method = v;
      if (auto v = str_of(ho, "requestUri"); !v.empty()) op.request_uri = v;
      if (auto v = num_of(ho, "responseCode")) op.response_code = static_cast<int>(*v);
    }
    if (auto* in = oo.if_contains("input"); in && in->is_object())
      op.input = shape_ref(*m, str_of(in->as_object(), "shape"));
    if (auto* out = oo.if_contains("output"); out && out->is_object()) {
      op.output = shape_ref(*m, str_of(out->as_object(), "shape"));
      op.result_wrapper = str_of(out->as_object(), "resultWrapper");
    }
    if (auto* errs = oo.if_contains("errors"); errs && errs->is_array())
      for (const auto& e : errs->as_array())
        if (e.is_object())
          if (auto* s = shape_ref(*m, str_of(e.as_object(), "shape"))) op.errors.push_back(s);
    m->operations.emplace(op.name, std::move(op));
  }
  return m;
}

void ServiceModel::retain(const std::set<std::string, std::less<>>& served) {
  std::unordered_set<const Shape*> keep;
  std::vector<const Shape*> todo;
  auto want = [&](const Shape* s) {
    if (s && keep.insert(s).second) todo.push_back(s);
  };
  const bool rest = protocol == Protocol::kRestJson || protocol == Protocol::kRestXml;
  for (auto& [name, op] : operations) {
    if (served.contains(name)) {
      want(op.input);
      want(op.output);
      for (const Shape* e : op.errors) want(e);
      continue;
    }
    if (rest) want(op.input);
    else op.input = nullptr;
    op.output = nullptr;
    op.errors.clear();
  }
  for (const auto& [code, s] : errors_by_code) want(s);
  while (!todo.empty()) {
    const Shape* s = todo.back();
    todo.pop_back();
    for (const auto& m : s->members) want(m.shape);
    want(s->member.shape);
    want(s->key.shape);
    want(s->value.shape);
  }
  std::erase_if(shapes, [&](const auto& kv) { return !keep.contains(kv.second.get()); });
}

Result<std::unique_ptr<ServiceModel>> ServiceModel::load_file(std::string id,
                                                              const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::internal(fmt::format("model {}: cannot read '{}'", id, path));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(std::move(id), ss.str());
}

std::string default_model_dir() {
  if (const char* env = std::getenv("PIER_MODELS"); env && *env) return env;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "share/pier/models";
  return (exe.parent_path().parent_path() / "share" / "pier" / "models").string();
}

}  // namespace pier::aws

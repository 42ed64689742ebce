#include "services/ec2/objects.h"

#include <fmt/format.h>

#include "services/util.h"

namespace pier::svc::ec2 {

using store::Db;

namespace {

Result<Object> row(store::Stmt* st) {
  Object o;
  o.id = st->text(0);
  o.type = st->text(1);
  o.vpc_id = st->text(2);
  PIER_ASSIGN(o.doc, parse_object(st->text(3)));
  return o;
}

}  // namespace

Result<std::optional<Object>> load(Db& db, const Scope& s, const std::string& id) {
  PIER_ASSIGN(auto* st, db.prepare("SELECT id, type, vpc_id, doc FROM ec2_objects WHERE account=? AND region=? AND id=?"));
  st->args(s.account, s.region, id);
  PIER_ASSIGN(bool found, st->step());
  if (!found) return std::optional<Object>();
  auto o = row(st);
  st->reset();
  if (!o.ok()) return o.error();
  return std::optional<Object>(std::move(o).value());
}

Result<std::vector<Object>> load_all(Db& db, const Scope& s, const std::string& type, const std::string& vpc_id) {
  PIER_ASSIGN(auto* st, db.prepare(
      "SELECT id, type, vpc_id, doc FROM ec2_objects WHERE account=? AND region=? AND type=? "
      "AND (?='' OR vpc_id=?) ORDER BY id"));
  st->args(s.account, s.region, type, vpc_id, vpc_id);
  std::vector<Object> out;
  for (;;) {
    PIER_ASSIGN(bool more, st->step());
    if (!more) break;
    auto o = row(st);
    if (!o.ok()) {
      st->reset();
      return o.error();
    }
    out.push_back(std::move(o).value());
  }
  return out;
}

Status save(Db& db, const Scope& s, const Object& o) {
  PIER_ASSIGN(auto* st, db.prepare(
      "INSERT INTO ec2_objects (account, region, id, type, vpc_id, doc) VALUES (?,?,?,?,?,?) "
      "ON CONFLICT (account, region, id) DO UPDATE SET vpc_id=excluded.vpc_id, doc=excluded.doc"));
  return st->args(s.account, s.region, o.id, o.type, o.vpc_id, json::serialize(o.doc)).run();
}

Status erase(Db& db, const Scope& s, const std::string& id) {
  PIER_ASSIGN(auto* st, db.prepare("DELETE FROM ec2_objects WHERE account=? AND region=? AND id=?"));
  PIER_TRY(st->args(s.account, s.region, id).run());
  PIER_ASSIGN(auto* t, db.prepare("DELETE FROM ec2_tags WHERE account=? AND region=? AND id=?"));
  return t->args(s.account, s.region, id).run();
}

Status put_tags(Db& db, const Scope& s, const std::string& id, const json::array& tags) {
  PIER_ASSIGN(auto* st, db.prepare(
      "INSERT INTO ec2_tags (account, region, id, key, value) VALUES (?,?,?,?,?) "
      "ON CONFLICT (account, region, id, key) DO UPDATE SET value=excluded.value"));
  for (const auto& t : tags) {
    if (!t.is_object()) continue;
    std::string key = get_string(t.as_object(), "Key");
    PIER_TRY(st->args(s.account, s.region, id, key, get_string(t.as_object(), "Value")).run());
  }
  return {};
}

Status delete_tags(Db& db, const Scope& s, const std::string& id, const json::array& tags) {
  if (tags.empty()) {
    PIER_ASSIGN(auto* st, db.prepare("DELETE FROM ec2_tags WHERE account=? AND region=? AND id=?"));
    return st->args(s.account, s.region, id).run();
  }
  // A tag named with a value is deleted only if the value matches (AWS).
  PIER_ASSIGN(auto* st, db.prepare(
      "DELETE FROM ec2_tags WHERE account=? AND region=? AND id=? AND key=? AND (? IS NULL OR value=?)"));
  for (const auto& t : tags) {
    if (!t.is_object()) continue;
    const auto& o = t.as_object();
    std::string key = get_string(o, "Key");
    if (o.contains("Value")) {
      std::string v = get_string(o, "Value");
      PIER_TRY(st->args(s.account, s.region, id, key, v, v).run());
    } else {
      PIER_TRY(st->args(s.account, s.region, id, key, std::nullopt, std::nullopt).run());
    }
  }
  return {};
}

Result<json::array> tags_of(Db& db, const Scope& s, const std::string& id) {
  PIER_ASSIGN(auto* st, db.prepare("SELECT key, value FROM ec2_tags WHERE account=? AND region=? AND id=? ORDER BY key"));
  st->args(s.account, s.region, id);
  json::array out;
  for (;;) {
    PIER_ASSIGN(bool more, st->step());
    if (!more) break;
    out.push_back(json::object{{"Key", st->text(0)}, {"Value", st->text(1)}});
  }
  return out;
}

Result<std::vector<std::array<std::string, 3>>> all_tags(Db& db, const Scope& s) {
  PIER_ASSIGN(auto* st, db.prepare("SELECT id, key, value FROM ec2_tags WHERE account=? AND region=? ORDER BY id, key"));
  st->args(s.account, s.region);
  std::vector<std::array<std::string, 3>> out;
  for (;;) {
    PIER_ASSIGN(bool more, st->step());
    if (!more) break;
    out.push_back({st->text(0), st->text(1), st->text(2)});
  }
  return out;
}

std::string resource_type(const std::string& id) {
  static const std::map<std::string, std::string> kTypes = {
      {"vpc", "vpc"}, {"subnet", "subnet"}, {"igw", "internet-gateway"}, {"rtb", "route-table"},
      {"sg", "security-group"}, {"acl", "network-acl"}, {"nat", "natgateway"}, {"eipalloc", "elastic-ip"},
      {"eni", "network-interface"}, {"vpce", "vpc-endpoint"}, {"dopt", "dhcp-options"}};
  auto it = kTypes.find(id.substr(0, id.find('-')));
  return it == kTypes.end() ? "" : it->second;
}

bool glob(std::string_view p, std::string_view s) {
  size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++pi;
      ++si;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

Status check_filters(const json::object& input, const FilterFields& fields) {
  const auto* filters = get_array(input, "Filters");
  if (!filters) return {};
  for (const auto& f : *filters) {
    if (!f.is_object()) continue;
    std::string name = get_string(f.as_object(), "Name");
    if (name.starts_with("tag:") || name == "tag-key" || name == "tag-value" || fields.count(name)) continue;
    return Error::invalid("InvalidParameterValue", fmt::format("The filter '{}' is invalid", name));
  }
  return {};
}

bool matches(const json::object& input, const FilterFields& fields, const json::object& doc) {
  const auto* filters = get_array(input, "Filters");
  if (!filters) return true;
  for (const auto& f : *filters) {
    if (!f.is_object()) continue;
    std::string name = get_string(f.as_object(), "Name");
    std::vector<std::string> have;
    if (name.starts_with("tag:") || name == "tag-key" || name == "tag-value") {
      if (const auto* tags = get_array(doc, "Tags"))
        for (const auto& t : *tags) {
          std::string k = get_string(t.as_object(), "Key"), v = get_string(t.as_object(), "Value");
          if (name == "tag-key") have.push_back(k);
          else if (name == "tag-value") have.push_back(v);
          else if (k == name.substr(4)) have.push_back(v);
        }
    } else if (auto it = fields.find(name); it != fields.end()) {
      have = it->second(doc);
    }
    // Within a filter the values are OR'ed; filters are AND'ed.
    bool any = false;
    for (const auto& want : get_strings(f.as_object(), "Values"))
      for (const auto& h : have)
        if (glob(want, h)) any = true;
    if (!any) return false;
  }
  return true;
}

json::object view(const json::object& doc) {
  json::object out;
  for (const auto& [k, v] : doc)
    if (!k.starts_with("_")) out.emplace(k, v);
  return out;
}

}  // namespace pier::svc::ec2

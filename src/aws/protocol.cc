#include "aws/protocol.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <limits>

#include "aws/errors.h"
#include "aws/xml.h"
#include "common/strings.h"
#include "common/time.h"

namespace pier::aws {

namespace bhttp = boost::beast::http;
using Params = std::multimap<std::string, std::string>;

Url split_target(std::string_view target) {
  Url u;
  auto q = target.find('?');
  u.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) {
    u.raw_query = std::string(target.substr(q + 1));
    u.query = parse_form(u.raw_query);
  }
  return u;
}

Params parse_form(std::string_view body) {
  Params out;
  for (auto part : str::split(body, '&')) {
    if (part.empty()) continue;
    auto eq = part.find('=');
    auto k = str::uri_decode(part.substr(0, eq), true);
    auto v = eq == std::string_view::npos ? std::optional<std::string>("")
                                          : str::uri_decode(part.substr(eq + 1), true);
    if (k && v) out.emplace(std::move(*k), std::move(*v));
  }
  return out;
}

Protocol guess_protocol(const http::Request& req) {
  if (req.find("x-amz-target") != req.end()) return Protocol::kJson;
  auto ct = req[bhttp::field::content_type];
  if (ct.find("x-www-form-urlencoded") != std::string_view::npos) return Protocol::kQuery;
  if (req.target().find("Action=") != std::string_view::npos) return Protocol::kQuery;
  return Protocol::kJson;
}

namespace {

// ---------------------------------------------------------------- scalars

struct Problems {
  std::vector<std::string> serialization;
  std::vector<std::string> missing;
  std::vector<std::string> invalid;
};

// A scalar from its text form (query, headers, URI, XML).
std::optional<json::value> scalar_from_text(const Shape& s, std::string_view text) {
  if (s.type == "string") return json::value(json::string(text));
  if (s.type == "integer" || s.type == "long") {
    std::string t(str::trim(text));
    if (t.empty()) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(t.c_str(), &end, 10);
    if (*end || errno) return std::nullopt;
    if (s.type == "integer" && (v > std::numeric_limits<int32_t>::max() ||
                                v < std::numeric_limits<int32_t>::min()))
      return std::nullopt;
    return json::value(static_cast<int64_t>(v));
  }
  if (s.type == "float" || s.type == "double") {
    std::string t(str::trim(text));
    char* end = nullptr;
    double v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end) return std::nullopt;
    return json::value(v);
  }
  if (s.type == "boolean") {
    if (str::iequals(text, "true")) return json::value(true);
    if (str::iequals(text, "false")) return json::value(false);
    return std::nullopt;
  }
  if (s.type == "timestamp") {
    if (auto t = time::parse_iso8601(text)) return json::value(*t);
    std::string t(str::trim(text));
    char* end = nullptr;
    double v = std::strtod(t.c_str(), &end);
    if (!t.empty() && !*end) return json::value(v);
    return std::nullopt;
  }
  if (s.type == "blob") {
    if (s.streaming) return json::value(json::string(text));
    auto d = str::base64_decode(text);
    if (!d) return std::nullopt;
    return json::value(json::string(*d));
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- JSON in

json::value json_in(const Shape& s, const json::value& v, const std::string& path, Problems& pr) {
  auto wrong = [&](std::string_view want) {
    pr.serialization.push_back(
        fmt::format("Unexpected value at '{}': expected {}", path.empty() ? "$" : path, want));
    return json::value();
  };
  if (s.type == "structure") {
    if (!v.is_object()) return wrong("a structure");
    json::object out;
    for (const auto& [k, val] : v.as_object()) {
      const Member* m = s.find_member(k);
      if (!m || val.is_null()) continue;  // unknown members are ignored, as AWS does
      json::value c = json_in(*m->shape, val, path.empty() ? std::string(k) : path + "." + std::string(k), pr);
      if (!c.is_null()) out[k] = std::move(c);
    }
    return out;
  }
  if (s.type == "list") {
    if (!v.is_array()) return wrong("a list");
    json::array out;
    size_t i = 0;
    for (const auto& e : v.as_array()) {
      if (e.is_null()) continue;
      json::value c = json_in(*s.member.shape, e, fmt::format("{}.{}", path, ++i), pr);
      if (!c.is_null()) out.push_back(std::move(c));
    }
    return out;
  }
  if (s.type == "map") {
    if (!v.is_object()) return wrong("a map");
    json::object out;
    for (const auto& [k, val] : v.as_object()) {
      if (val.is_null()) continue;
      json::value c = json_in(*s.value.shape, val, path + "." + std::string(k), pr);
      if (!c.is_null()) out[k] = std::move(c);
    }
    return out;
  }
  if (s.type == "string") {
    if (!v.is_string()) return wrong("a string");
    return v;
  }
  if (s.type == "integer" || s.type == "long") {
    if (v.is_int64()) {
      if (s.type == "integer" && (v.as_int64() > std::numeric_limits<int32_t>::max() ||
                                  v.as_int64() < std::numeric_limits<int32_t>::min()))
        return wrong("an integer");
      return v;
    }
    if (v.is_uint64()) return wrong("an integer");
    if (v.is_double() && std::floor(v.as_double()) == v.as_double() &&
        std::fabs(v.as_double()) < 9e15)
      return json::value(static_cast<int64_t>(v.as_double()));
    return wrong("an integer");
  }
  if (s.type == "float" || s.type == "double") {
    if (v.is_int64()) return json::value(static_cast<double>(v.as_int64()));
    if (v.is_uint64()) return json::value(static_cast<double>(v.as_uint64()));
    if (v.is_double()) return v;
    return wrong("a number");
  }
  if (s.type == "boolean") {
    if (!v.is_bool()) return wrong("a boolean");
    return v;
  }
  if (s.type == "timestamp") {
    if (v.is_int64()) return json::value(static_cast<double>(v.as_int64()));
    if (v.is_double()) return v;
    if (v.is_string()) {
      if (auto t = time::parse_iso8601(v.as_string())) return json::value(*t);
    }
    return wrong("a timestamp");
  }
  if (s.type == "blob") {
    if (!v.is_string()) return wrong("a base64 string");
    auto d = str::base64_decode(v.as_string());
    if (!d) return wrong("a base64 string");
    return json::value(json::string(*d));
  }
  // document types and anything newer: passed through untouched.
  return v;
}

// ---------------------------------------------------------------- query / EC2 in

bool has_prefix(const Params& p, const std::string& key) {
  if (p.count(key)) return true;
  auto it = p.lower_bound(key + ".");
  return it != p.end() && it->first.compare(0, key.size() + 1, key + ".") == 0;
}

std::string query_member_name(Protocol proto, const Member& m) {
  if (proto == Protocol::kEc2) {
    if (!m.query_name.empty()) return m.query_name;
    if (!m.location_name.empty()) {
      std::string n = m.location_name;
      n[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(n[0])));
      return n;
    }
    return m.name;
  }
  return m.location_name.empty() ? m.name : m.location_name;
}

json::value query_in(Protocol proto, const Shape& s, const Params& p, const std::string& key,
                     Problems& pr, bool flattened_member);

json::value query_list_in(Protocol proto, const Shape& s, const Params& p, const std::string& key,
                          Problems& pr, bool flattened) {
  json::array out;
  std::string base;
  if (proto == Protocol::kEc2 || flattened || s.flattened) {
    base = key;
  } else {
    base = key + "." + (s.member.location_name.empty() ? "member" : s.member.location_name);
  }
  for (size_t i = 1;; ++i) {
    std::string k = fmt::format("{}.{}", base, i);
    if (!has_prefix(p, k)) break;
    out.push_back(query_in(proto, *s.member.shape, p, k, pr, false));
  }
  return out;
}

json::value query_in(Protocol proto, const Shape& s, const Params& p, const std::string& key,
                     Problems& pr, bool flattened_member) {
  if (s.type == "structure") {
    json::object out;
    for (const auto& m : s.members) {
      std::string k = (key.empty() ? "" : key + ".") + query_member_name(proto, m);
      if (!has_prefix(p, k)) continue;
      json::value v = query_in(proto, *m.shape, p, k, pr, m.flattened);
      if (!v.is_null()) out[m.name] = std::move(v);
    }
    return out;
  }
  if (s.type == "list") {
    // "Name=" with an empty value is how the query protocol sends an empty list.
    if (auto it = p.find(key); it != p.end() && it->second.empty() && !has_prefix(p, key + ".1") &&
                               !has_prefix(p, key + ".member.1"))
      return json::array();
    return query_list_in(proto, s, p, key, pr, flattened_member);
  }
  if (s.type == "map") {
    json::object out;
    bool flat = flattened_member || s.flattened;
    std::string base = flat ? key : key + ".entry";
    std::string kn = s.key.location_name.empty() ? "key" : s.key.location_name;
    std::string vn = s.value.location_name.empty() ? "value" : s.value.location_name;
    for (size_t i = 1;; ++i) {
      std::string e = fmt::format("{}.{}", base, i);
      if (!has_prefix(p, e)) break;
      auto kit = p.find(e + "." + kn);
      if (kit == p.end()) continue;
      out[kit->second] = query_in(proto, *s.value.shape, p, e + "." + vn, pr, false);
    }
    return out;
  }
  auto it = p.find(key);
  if (it == p.end()) return json::value();
  auto v = scalar_from_text(s, it->second);
  if (!v) {
    pr.invalid.push_back(fmt::format("Value '{}' at '{}' failed to satisfy constraint: Member must be of type {}",
                                     it->second, key, s.type));
    return json::value();
  }
  return *v;
}

// ---------------------------------------------------------------- XML in

json::value xml_in(const Shape& s, const xml::Node& n, Problems& pr);

std::string xml_member_name(const Member& m) {
  return m.location_name.empty() ? m.name : m.location_name;
}

json::value xml_in_member(const Member& m, const xml::Node& parent, Problems& pr) {
  const Shape& s = *m.shape;
  std::string name = xml_member_name(m);
  if (m.xml_attribute) {
    for (const auto& [k, v] : parent.attributes) {
      auto colon = k.find(':');
      if (k == name || (colon != std::string::npos && k.substr(colon + 1) == name)) {
        if (auto sv = scalar_from_text(s, v)) return *sv;
      }
    }
    return json::value();
  }
  if (s.type == "list" && (m.flattened || s.flattened)) {
    auto items = parent.children_named(
        s.member.location_name.empty() ? name : s.member.location_name);
    if (items.empty()) items = parent.children_named(name);
    if (items.empty()) return json::value();
    json::array out;
    for (const auto* it : items) out.push_back(xml_in(*s.member.shape, *it, pr));
    return out;
  }
  const xml::Node* c = parent.child(name);
  if (!c) return json::value();
  return xml_in(s, *c, pr);
}

json::value xml_in(const Shape& s, const xml::Node& n, Problems& pr) {
  if (s.type == "structure") {
    json::object out;
    for (const auto& m : s.members) {
      if (!m.location.empty()) continue;
      json::value v = xml_in_member(m, n, pr);
      if (!v.is_null()) out[m.name] = std::move(v);
    }
    return out;
  }
  if (s.type == "list") {
    json::array out;
    std::string item = s.member.location_name.empty() ? "member" : s.member.location_name;
    for (const auto* c : n.children_named(item)) out.push_back(xml_in(*s.member.shape, *c, pr));
    return out;
  }
  if (s.type == "map") {
    json::object out;
    std::string kn = s.key.location_name.empty() ? "key" : s.key.location_name;
    std::string vn = s.value.location_name.empty() ? "value" : s.value.location_name;
    for (const auto* e : n.children_named("entry")) {
      const auto* k = e->child(kn);
      const auto* v = e->child(vn);
      if (k && v) out[k->text] = xml_in(*s.value.shape, *v, pr);
    }
    return out;
  }
  auto v = scalar_from_text(s, n.text);
  if (!v) {
    pr.invalid.push_back(fmt::format("Value '{}' at '{}' is not a valid {}", n.text, n.name, s.type));
    return json::value();
  }
  return *v;
}

// ---------------------------------------------------------------- REST routing

struct UriTemplate {
  std::vector<std::string> segments;  // literal, "{Name}" or "{Name+}"
  std::vector<std::pair<std::string, std::string>> query;  // required literal query keys
};

UriTemplate parse_template(std::string_view uri) {
  UriTemplate t;
  auto q = uri.find('?');
  std::string_view path = uri.substr(0, q);
  for (auto seg : str::split(path, '/'))
    if (!seg.empty()) t.segments.emplace_back(seg);
  if (q != std::string_view::npos) {
    for (auto part : str::split(uri.substr(q + 1), '&')) {
      if (part.empty()) continue;
      auto eq = part.find('=');
      t.query.emplace_back(std::string(part.substr(0, eq)),
                           eq == std::string_view::npos ? "" : std::string(part.substr(eq + 1)));
    }
  }
  return t;
}

// Matches path against the template; returns the score (literal characters
// matched), or -1, and fills the labels.
int match_template(const UriTemplate& t, const Url& url, std::map<std::string, std::string>& labels) {
  std::vector<std::string> segs;
  std::vector<size_t> offsets;  // where each segment starts in the raw path
  std::string_view p = url.path;
  for (size_t pos = 0; pos <= p.size();) {
    size_t slash = p.find('/', pos);
    size_t end = slash == std::string_view::npos ? p.size() : slash;
    if (end > pos) {
      segs.emplace_back(p.substr(pos, end - pos));
      offsets.push_back(pos);
    }
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  int score = 0;
  size_t i = 0;
  for (size_t ti = 0; ti < t.segments.size(); ++ti) {
    const std::string& ts = t.segments[ti];
    if (ts.size() > 2 && ts.front() == '{' && ts.back() == '}') {
      std::string name = ts.substr(1, ts.size() - 2);
      if (name.back() == '+') {
        name.pop_back();
        if (i >= segs.size()) return -1;
        // Greedy: the rest of the path, as sent (slashes kept).
        std::string rest(p.substr(offsets[i]));
        auto d = str::uri_decode(rest);
        labels[name] = d ? *d : rest;
        i = segs.size();
        continue;
      }
      if (i >= segs.size()) return -1;
      auto d = str::uri_decode(segs[i]);
      labels[name] = d ? *d : segs[i];
      ++i;
      continue;
    }
    if (i >= segs.size() || segs[i] != ts) return -1;
    score += static_cast<int>(ts.size()) + 1;
    ++i;
  }
  if (i != segs.size()) return -1;
  for (const auto& [k, v] : t.query) {
    auto it = url.query.find(k);
    if (it == url.query.end()) return -1;
    if (!v.empty() && it->second != v) return -1;
    score += 1;
  }
  return score;
}

// ---------------------------------------------------------------- validation

void validate_rec(const Shape& s, const json::value& v, const std::string& path, Problems& pr,
                  bool lower_first) {
  auto name_of = [&](const std::string& n) {
    if (!lower_first || n.empty()) return n;
    std::string r = n;
    r[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(r[0])));
    return r;
  };
  if (s.type == "structure" && v.is_object()) {
    const auto& o = v.as_object();
    for (const auto& m : s.members) {
      std::string mp = path.empty() ? name_of(m.name) : path + "." + name_of(m.name);
      const json::value* mv = o.if_contains(m.name);
      if (!mv) {
        if (s.required.count(m.name)) pr.missing.push_back(mp);
        continue;
      }
      validate_rec(*m.shape, *mv, mp, pr, lower_first);
    }
    return;
  }
  if (s.type == "list" && v.is_array()) {
    const auto& a = v.as_array();
    if (s.min && static_cast<double>(a.size()) < *s.min)
      pr.invalid.push_back(fmt::format(
          "Value '[]' at '{}' failed to satisfy constraint: Member must have length greater "
          "than or equal to {}",
          path, *s.min));
    if (s.max && static_cast<double>(a.size()) > *s.max)
      pr.invalid.push_back(fmt::format(
          "Value at '{}' failed to satisfy constraint: Member must have length less than or "
          "equal to {}",
          path, *s.max));
    size_t i = 0;
    for (const auto& e : a) validate_rec(*s.member.shape, e, fmt::format("{}.{}.member", path, ++i), pr, lower_first);
    return;
  }
  if (s.type == "map" && v.is_object()) {
    for (const auto& [k, e] : v.as_object()) validate_rec(*s.value.shape, e, path + "." + std::string(k), pr, lower_first);
    return;
  }
  if (s.type == "string" && v.is_string()) {
    std::string_view sv = v.as_string();
    if (!s.enums.empty()) {
      bool ok = false;
      for (const auto& e : s.enums) ok |= e == sv;
      if (!ok) {
        std::string set;
        for (size_t i = 0; i < s.enums.size(); ++i) set += (i ? ", " : "") + s.enums[i];
        pr.invalid.push_back(fmt::format(
            "Value '{}' at '{}' failed to satisfy constraint: Member must satisfy enum value "
            "set: [{}]",
            sv, path, set));
      }
    }
    // Lengths count characters, not bytes.
    size_t chars = 0;
    for (unsigned char c : sv) chars += (c & 0xc0) != 0x80;
    if (s.min && static_cast<double>(chars) < *s.min)
      pr.invalid.push_back(fmt::format(
          "Value '{}' at '{}' failed to satisfy constraint: Member must have length greater "
          "than or equal to {}",
          s.sensitive ? "***" : std::string(sv), path, *s.min));
    if (s.max && static_cast<double>(chars) > *s.max)
      pr.invalid.push_back(fmt::format(
          "Value '{}' at '{}' failed to satisfy constraint: Member must have length less than "
          "or equal to {}",
          s.sensitive ? "***" : std::string(sv), path, *s.max));
    return;
  }
  if ((s.type == "integer" || s.type == "long") && v.is_int64()) {
    auto n = static_cast<double>(v.as_int64());
    if (s.min && n < *s.min)
      pr.invalid.push_back(fmt::format(
          "Value '{}' at '{}' failed to satisfy constraint: Member must have value greater than "
          "or equal to {}",
          v.as_int64(), path, *s.min));
    if (s.max && n > *s.max)
      pr.invalid.push_back(fmt::format(
          "Value '{}' at '{}' failed to satisfy constraint: Member must have value less than or "
          "equal to {}",
          v.as_int64(), path, *s.max));
  }
}

Error problems_error(Protocol p, const Problems& pr) {
  if (!pr.serialization.empty()) {
    if (p == Protocol::kJson || p == Protocol::kRestJson)
      return Error::invalid("SerializationException", pr.serialization.front());
    return Error::invalid(validation_code(p, false), pr.serialization.front());
  }
  if (p == Protocol::kEc2) {
    if (!pr.missing.empty())
      return Error::invalid("MissingParameter",
                            fmt::format("The request must contain the parameter {}", pr.missing.front()));
    return Error::invalid("InvalidParameterValue", pr.invalid.front());
  }
  std::vector<std::string> all;
  for (const auto& m : pr.missing)
    all.push_back(fmt::format(
        "Value null at '{}' failed to satisfy constraint: Member must not be null", m));
  for (const auto& i : pr.invalid) all.push_back(i);
  std::string msg = fmt::format("{} validation error{} detected: ", all.size(), all.size() == 1 ? "" : "s");
  for (size_t i = 0; i < all.size(); ++i) msg += (i ? "; " : "") + all[i];
  return Error::invalid(validation_code(p, !pr.missing.empty()), msg);
}

// ---------------------------------------------------------------- JSON out

std::string timestamp_text(const Shape& s, double t, std::string_view dflt) {
  std::string_view fmt_name = s.timestamp_format.empty() ? dflt : std::string_view(s.timestamp_format);
  if (fmt_name == "rfc822") return time::rfc822(t);
  if (fmt_name == "unixTimestamp") return fmt::format("{}", t);
  return time::iso8601(t);
}

double number_of(const json::value& v) {
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  if (v.is_uint64()) return static_cast<double>(v.as_uint64());
  if (v.is_double()) return v.as_double();
  return 0;
}

json::value json_out(const Shape& s, const json::value& v) {
  if (s.type == "structure") {
    json::object out;
    if (!v.is_object()) return out;
    for (const auto& m : s.members) {
      if (!m.location.empty()) continue;
      if (const auto* mv = v.as_object().if_contains(m.name); mv && !mv->is_null())
        out[m.name] = json_out(*m.shape, *mv);
    }
    return out;
  }
  if (s.type == "list") {
    json::array out;
    if (v.is_array())
      for (const auto& e : v.as_array()) out.push_back(json_out(*s.member.shape, e));
    return out;
  }
  if (s.type == "map") {
    json::object out;
    if (v.is_object())
      for (const auto& [k, e] : v.as_object()) out[k] = json_out(*s.value.shape, e);
    return out;
  }
  if (s.type == "timestamp") {
    if (v.is_string()) return v;
    if (s.timestamp_format == "iso8601") return json::value(time::iso8601(number_of(v)));
    return json::value(number_of(v));
  }
  if (s.type == "blob" && v.is_string()) return json::value(str::base64_encode(v.as_string()));
  if ((s.type == "integer" || s.type == "long") && v.is_double())
    return json::value(static_cast<int64_t>(v.as_double()));
  if ((s.type == "float" || s.type == "double") && v.is_int64())
    return json::value(static_cast<double>(v.as_int64()));
  return v;
}

// Writes the output document straight to text, walking shape and value
// together: members the shape does not have are left out, timestamps become
// epoch seconds, blobs base64. No intermediate document is built.
void json_write(const Shape& s, const json::value& v, std::string& out) {
  if (s.type == "structure") {
    out += '{';
    bool first = true;
    if (v.is_object()) {
      for (const auto& [k, mv] : v.as_object()) {
        if (mv.is_null()) continue;
        const Member* m = s.find_member(k);
        if (!m || !m->location.empty()) continue;
        if (!first) out += ',';
        first = false;
        out += json::serialize(json::string_view(k));
        out += ':';
        json_write(*m->shape, mv, out);
      }
    }
    out += '}';
    return;
  }
  if (s.type == "list") {
    out += '[';
    if (v.is_array()) {
      bool first = true;
      for (const auto& e : v.as_array()) {
        if (!first) out += ',';
        first = false;
        json_write(*s.member.shape, e, out);
      }
    }
    out += ']';
    return;
  }
  if (s.type == "map") {
    out += '{';
    if (v.is_object()) {
      bool first = true;
      for (const auto& [k, e] : v.as_object()) {
        if (!first) out += ',';
        first = false;
        out += json::serialize(json::string_view(k));
        out += ':';
        json_write(*s.value.shape, e, out);
      }
    }
    out += '}';
    return;
  }
  if (s.type == "timestamp" || s.type == "blob" || s.type == "integer" || s.type == "long" ||
      s.type == "float" || s.type == "double") {
    out += json::serialize(json_out(s, v));
    return;
  }
  out += json::serialize(v);
}

// ---------------------------------------------------------------- XML out

std::string scalar_text(const Shape& s, const json::value& v, std::string_view ts_default) {
  if (s.type == "timestamp") return timestamp_text(s, number_of(v), ts_default);
  if (s.type == "blob" && v.is_string()) return str::base64_encode(v.as_string());
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_bool()) return v.as_bool() ? "true" : "false";
  if (v.is_int64()) return std::to_string(v.as_int64());
  if (v.is_uint64()) return std::to_string(v.as_uint64());
  if (v.is_double()) {
    if (s.type == "integer" || s.type == "long") return std::to_string(static_cast<int64_t>(v.as_double()));
    return fmt::format("{}", v.as_double());
  }
  return {};
}

void xml_out(Protocol proto, const Shape& s, const json::value& v, const std::string& name,
             bool flattened, xml::Writer& w);

void xml_members_out(Protocol proto, const Shape& s, const json::object& o, xml::Writer& w) {
  for (const auto& m : s.members) {
    if (!m.location.empty() || m.xml_attribute) continue;
    const auto* mv = o.if_contains(m.name);
    if (!mv || mv->is_null()) continue;
    xml_out(proto, *m.shape, *mv, xml_member_name(m), m.flattened, w);
  }
}

void xml_out(Protocol proto, const Shape& s, const json::value& v, const std::string& name,
             bool flattened, xml::Writer& w) {
  if (s.type == "structure") {
    w.open(name);
    if (v.is_object()) xml_members_out(proto, s, v.as_object(), w);
    w.close(name);
    return;
  }
  if (s.type == "list") {
    if (!v.is_array()) return;
    if (flattened || s.flattened) {
      std::string item = s.member.location_name.empty() ? name : s.member.location_name;
      for (const auto& e : v.as_array()) xml_out(proto, *s.member.shape, e, item, false, w);
      return;
    }
    std::string item = s.member.location_name.empty() ? "member" : s.member.location_name;
    w.open(name);
    for (const auto& e : v.as_array()) xml_out(proto, *s.member.shape, e, item, false, w);
    w.close(name);
    return;
  }
  if (s.type == "map") {
    if (!v.is_object()) return;
    std::string kn = s.key.location_name.empty() ? "key" : s.key.location_name;
    std::string vn = s.value.location_name.empty() ? "value" : s.value.location_name;
    bool flat = flattened || s.flattened;
    if (!flat) w.open(name);
    for (const auto& [k, e] : v.as_object()) {
      w.open(flat ? name : "entry");
      w.element(kn, k);
      xml_out(proto, *s.value.shape, e, vn, false, w);
      w.close(flat ? name : "entry");
    }
    if (!flat) w.close(name);
    return;
  }
  w.element(name, scalar_text(s, v, "iso8601"));
}

http::Response finish(http::Response res, const std::string& request_id, bool amzn) {
  res.set(amzn ? "x-amzn-RequestId" : "x-amz-request-id", request_id);
  res.prepare_payload();
  return res;
}

const char* json_content_type(const ServiceModel& m) {
  return m.json_version == "1.0" ? "application/x-amz-json-1.0" : "application/x-amz-json-1.1";
}

}  // namespace

// ---------------------------------------------------------------- public

Result<const Operation*> resolve_operation(const ServiceModel& m, const http::Request& req,
                                           const Url& url, const Params& form) {
  switch (m.protocol) {
    case Protocol::kJson: {
      auto it = req.find("x-amz-target");
      if (it == req.end())
        return Error::invalid("UnknownOperation", "Missing X-Amz-Target header");
      std::string_view target = it->value();
      auto dot = target.rfind('.');
      std::string_view prefix = target.substr(0, dot == std::string_view::npos ? 0 : dot);
      std::string_view name = dot == std::string_view::npos ? target : target.substr(dot + 1);
      const Operation* op = m.find_operation(name);
      if (!op || (!m.target_prefix.empty() && prefix != m.target_prefix))
        return Error::invalid("UnknownOperation",
                              fmt::format("Unknown operation {}", std::string_view(target).substr(0, 200)));
      return op;
    }
    case Protocol::kQuery:
    case Protocol::kEc2: {
      const std::string* action = nullptr;
      if (auto f = form.find("Action"); f != form.end()) action = &f->second;
      else if (auto q = url.query.find("Action"); q != url.query.end()) action = &q->second;
      if (!action) return Error::invalid("MissingAction", "Missing Action");
      const Operation* op = m.find_operation(*action);
      if (!op)
        return Error::invalid("UnknownOperation",
                              fmt::format("The action {} is not valid for this web service.", *action));
      return op;
    }
    case Protocol::kRestJson:
    case Protocol::kRestXml: {
      const Operation* best = nullptr;
      int best_score = -1;
      for (const auto& [name, op] : m.operations) {
        if (op.http_method != req.method_string()) continue;
        std::map<std::string, std::string> labels;
        int score = match_template(parse_template(op.request_uri), url, labels);
        if (score < 0) continue;
        // Operations that share a path are told apart by the headers they
        // require (S3's CopyObject is a PutObject with x-amz-copy-source).
        bool headers_ok = true;
        if (op.input) {
          for (const auto& mem : op.input->members) {
            if (mem.location != "header" || !op.input->required.count(mem.name)) continue;
            if (req.find(mem.location_name) == req.end()) headers_ok = false;
            else score += 100;
          }
        }
        if (!headers_ok) continue;
        if (score > best_score) {
          best_score = score;
          best = &op;
        }
      }
      if (!best) return Error::invalid("UnknownOperation", "No operation matches this request");
      return best;
    }
  }
  return Error::invalid("UnknownOperation", "");
}

Status validate(const ServiceModel& m, const Shape& shape, const json::value& doc) {
  Problems pr;
  bool query_like = m.protocol == Protocol::kQuery;
  validate_rec(shape, doc, "", pr, query_like);
  if (pr.missing.empty() && pr.invalid.empty()) return {};
  return problems_error(m.protocol, pr);
}

Result<json::object> decode_input(const ServiceModel& m, const Operation& op,
                                  const http::Request& req, const Url& url, const Params& form) {
  if (!op.input) return json::object();
  const Shape& in = *op.input;
  Problems pr;
  json::object doc;
  switch (m.protocol) {
    case Protocol::kJson: {
      std::string_view body = req.body();
      if (str::trim(body).empty()) body = "{}";
      boost::system::error_code ec;
      json::value v = json::parse(body, ec);
      if (ec)
        return Error::invalid("SerializationException",
                              "Unable to parse the request body as JSON");
      json::value d = json_in(in, v, "", pr);
      if (d.is_object()) doc = std::move(d.as_object());
      break;
    }
    case Protocol::kQuery:
    case Protocol::kEc2: {
      Params all = form;
      for (const auto& kv : url.query) all.insert(kv);
      json::value d = query_in(m.protocol, in, all, "", pr, false);
      if (d.is_object()) doc = std::move(d.as_object());
      break;
    }
    case Protocol::kRestJson:
    case Protocol::kRestXml: {
      std::map<std::string, std::string> labels;
      match_template(parse_template(op.request_uri), url, labels);
      const Member* payload = in.payload.empty() ? nullptr : in.find_member(in.payload);
      for (const auto& mem : in.members) {
        const Shape& s = *mem.shape;
        std::string wire = mem.location_name.empty() ? mem.name : mem.location_name;
        if (mem.location == "uri") {
          if (auto it = labels.find(wire); it != labels.end()) {
            if (auto v = scalar_from_text(s, it->second)) doc[mem.name] = *v;
            else pr.invalid.push_back(fmt::format("Value '{}' at '{}' is not valid", it->second, mem.name));
          }
        } else if (mem.location == "querystring") {
          if (s.type == "map") {
            json::object mo;
            for (const auto& [k, v] : url.query) mo[k] = v;
            if (!mo.empty()) doc[mem.name] = std::move(mo);
          } else if (s.type == "list") {
            json::array a;
            auto [b, e] = url.query.equal_range(wire);
            for (auto it = b; it != e; ++it)
              if (auto v = scalar_from_text(*s.member.shape, it->second)) a.push_back(*v);
            if (!a.empty()) doc[mem.name] = std::move(a);
          } else if (auto it = url.query.find(wire); it != url.query.end()) {
            if (auto v = scalar_from_text(s, it->second)) doc[mem.name] = *v;
            else pr.invalid.push_back(fmt::format("Value '{}' at '{}' is not valid", it->second, mem.name));
          }
        } else if (mem.location == "header") {
          auto it = req.find(wire);
          if (it != req.end()) {
            // Header timestamps are read as ISO 8601 or epoch seconds; RFC 822 ones
            // (S3's If-Modified-Since) are not parsed yet.
            if (auto v = scalar_from_text(s, it->value())) doc[mem.name] = *v;
          }
        } else if (mem.location == "headers") {
          json::object mo;
          std::string prefix = str::lower(wire);
          for (const auto& f : req) {
            std::string n = str::lower(std::string(f.name_string()));
            if (n.starts_with(prefix)) mo[n.substr(prefix.size())] = std::string(f.value());
          }
          if (!mo.empty()) doc[mem.name] = std::move(mo);
        }
      }
      std::string_view body = req.body();
      if (payload) {
        const Shape& ps = *payload->shape;
        if (ps.type == "blob" || ps.type == "string") {
          if (!body.empty() || ps.streaming) doc[payload->name] = json::string(body);
        } else if (!str::trim(body).empty()) {
          if (m.protocol == Protocol::kRestJson) {
            boost::system::error_code ec;
            json::value v = json::parse(body, ec);
            if (ec) return Error::invalid("SerializationException", "Unable to parse the request body as JSON");
            doc[payload->name] = json_in(ps, v, payload->name, pr);
          } else {
            PIER_ASSIGN(xml::Node root, xml::parse(body));
            doc[payload->name] = xml_in(ps, root, pr);
          }
        }
      } else if (!str::trim(body).empty()) {
        if (m.protocol == Protocol::kRestJson) {
          boost::system::error_code ec;
          json::value v = json::parse(body, ec);
          if (ec) return Error::invalid("SerializationException", "Unable to parse the request body as JSON");
          json::value d = json_in(in, v, "", pr);
          if (d.is_object())
            for (auto& [k, val] : d.as_object()) {
              const Member* mem = in.find_member(k);
              if (mem && mem->location.empty()) doc[k] = std::move(val);
            }
        } else {
          PIER_ASSIGN(xml::Node root, xml::parse(body));
          json::value d = xml_in(in, root, pr);
          if (d.is_object())
            for (auto& [k, val] : d.as_object()) doc[k] = std::move(val);
        }
      }
      break;
    }
  }
  if (!pr.serialization.empty() || !pr.invalid.empty()) return problems_error(m.protocol, pr);
  PIER_TRY(validate(m, in, doc));
  return doc;
}

http::Response encode_output(const ServiceModel& m, const Operation& op, const json::object& out,
                             const std::string& request_id, unsigned version) {
  switch (m.protocol) {
    case Protocol::kJson: {
      std::string body;
      body.reserve(512);
      if (op.output) json_write(*op.output, out, body);
      else body = "{}";
      return finish(http::make_response(version, bhttp::status::ok, json_content_type(m),
                                        std::move(body)),
                    request_id, true);
    }
    case Protocol::kQuery: {
      xml::Writer w;
      w.open(op.name + "Response", m.xml_namespace);
      if (op.output) {
        std::string wrapper = op.result_wrapper.empty() ? op.name + "Result" : op.result_wrapper;
        w.open(wrapper);
        xml_members_out(m.protocol, *op.output, out, w);
        w.close(wrapper);
      }
      w.open("ResponseMetadata");
      w.element("RequestId", request_id);
      w.close("ResponseMetadata");
      w.close(op.name + "Response");
      return finish(http::make_response(version, bhttp::status::ok, "text/xml", w.take()),
                    request_id, true);
    }
    case Protocol::kEc2: {
      xml::Writer w;
      w.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
      std::string ns = m.xml_namespace;
      if (!ns.empty() && ns.back() != '/') ns += '/';
      w.open(op.name + "Response", ns);
      w.element("requestId", request_id);
      if (op.output) xml_members_out(m.protocol, *op.output, out, w);
      w.close(op.name + "Response");
      return finish(http::make_response(version, bhttp::status::ok, "text/xml;charset=UTF-8", w.take()),
                    request_id, true);
    }
    case Protocol::kRestJson:
    case Protocol::kRestXml: {
      bool rj = m.protocol == Protocol::kRestJson;
      http::Response res{static_cast<bhttp::status>(op.response_code), version};
      res.set(bhttp::field::server, "pier");
      if (op.output) {
        const Shape& os = *op.output;
        for (const auto& mem : os.members) {
          const auto* v = out.if_contains(mem.name);
          if (!v || v->is_null()) continue;
          std::string wire = mem.location_name.empty() ? mem.name : mem.location_name;
          if (mem.location == "header") {
            res.set(wire, scalar_text(*mem.shape, *v, "rfc822"));
          } else if (mem.location == "headers" && v->is_object()) {
            for (const auto& [k, hv] : v->as_object())
              if (hv.is_string()) res.set(wire + std::string(k), std::string(hv.as_string()));
          } else if (mem.location == "statusCode" && v->is_int64()) {
            res.result(static_cast<unsigned>(v->as_int64()));
          }
        }
        const Member* payload = os.payload.empty() ? nullptr : os.find_member(os.payload);
        if (payload) {
          const auto* v = out.if_contains(payload->name);
          const Shape& ps = *payload->shape;
          if (v && (ps.type == "blob" || ps.type == "string") && v->is_string()) {
            res.body() = std::string(v->as_string());
          } else if (v && !v->is_null()) {
            if (rj) {
              res.set(bhttp::field::content_type, "application/json");
              res.body() = json::serialize(json_out(ps, *v));
            } else {
              xml::Writer w;
              std::string root = payload->location_name.empty()
                                     ? (ps.location_name.empty() ? payload->name : ps.location_name)
                                     : payload->location_name;
              w.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
              w.open(root, ps.xml_namespace);
              if (v->is_object()) xml_members_out(m.protocol, ps, v->as_object(), w);
              w.close(root);
              res.set(bhttp::field::content_type, "application/xml");
              res.body() = w.take();
            }
          }
        } else if (rj) {
          res.set(bhttp::field::content_type, "application/json");
          res.body() = json::serialize(json_out(os, out));
        } else {
          bool any_body = false;
          for (const auto& mem : os.members)
            if (mem.location.empty() && out.contains(mem.name)) any_body = true;
          if (any_body) {
            xml::Writer w;
            std::string root = os.location_name.empty() ? op.name + "Result" : os.location_name;
            w.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            w.open(root, os.xml_namespace.empty() ? "http://s3.amazonaws.com/doc/2006-03-01/"
                                                  : os.xml_namespace);
            xml_members_out(m.protocol, os, out, w);
            w.close(root);
            res.set(bhttp::field::content_type, "application/xml");
            res.body() = w.take();
          }
        }
      }
      return finish(std::move(res), request_id, rj);
    }
  }
  return http::make_response(version, bhttp::status::internal_server_error, "text/plain", "");
}

http::Response encode_error(Protocol p, const ServiceModel* m, const Error& in,
                            const std::string& request_id, unsigned version) {
  Error e = for_protocol(p, in);
  auto status = static_cast<bhttp::status>(http_status(m, e));
  bool sender = http_status(m, e) < 500;
  switch (p) {
    case Protocol::kJson: {
      json::object body{{"__type", e.code}, {"message", e.message}};
      return finish(http::make_response(version, status,
                                        m ? json_content_type(*m) : "application/x-amz-json-1.1",
                                        json::serialize(body)),
                    request_id, true);
    }
    case Protocol::kRestJson: {
      json::object body{{"Type", sender ? "User" : "Service"}, {"message", e.message}};
      auto res = http::make_response(version, status, "application/json", json::serialize(body));
      res.set("x-amzn-ErrorType", e.code);
      return finish(std::move(res), request_id, true);
    }
    case Protocol::kQuery: {
      xml::Writer w;
      w.open("ErrorResponse", m ? m->xml_namespace : "");
      w.open("Error");
      w.element("Type", sender ? "Sender" : "Receiver");
      w.element("Code", e.code);
      w.element("Message", e.message);
      w.close("Error");
      w.element("RequestId", request_id);
      w.close("ErrorResponse");
      return finish(http::make_response(version, status, "text/xml", w.take()), request_id, true);
    }
    case Protocol::kEc2: {
      xml::Writer w;
      w.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
      w.open("Response");
      w.open("Errors");
      w.open("Error");
      w.element("Code", e.code);
      w.element("Message", e.message);
      w.close("Error");
      w.close("Errors");
      w.element("RequestID", request_id);
      w.close("Response");
      return finish(http::make_response(version, status, "text/xml;charset=UTF-8", w.take()),
                    request_id, true);
    }
    case Protocol::kRestXml: {
      xml::Writer w;
      w.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
      w.open("Error");
      w.element("Code", e.code);
      w.element("Message", e.message);
      w.element("RequestId", request_id);
      w.close("Error");
      return finish(http::make_response(version, status, "application/xml", w.take()), request_id,
                    false);
    }
  }
  return http::make_response(version, status, "text/plain", e.message);
}

}  // namespace pier::aws

#include "iam/policy.h"

#include <boost/asio/ip/address.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <cmath>
#include <optional>

#include "common/strings.h"
#include "common/time.h"

namespace pier::iam {

namespace json = boost::json;

namespace {

Error malformed(std::string msg) {
  return Error::invalid("MalformedPolicyDocument", std::move(msg));
}

// A policy element that may be a string or an array of strings.
Result<std::vector<std::string>> strings_of(const json::value& v, std::string_view what) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.emplace_back(v.as_string());
  } else if (v.is_array()) {
    for (const auto& e : v.as_array()) {
      if (e.is_string()) out.emplace_back(e.as_string());
      else if (e.is_bool()) out.emplace_back(e.as_bool() ? "true" : "false");
      else if (e.is_int64()) out.emplace_back(std::to_string(e.as_int64()));
      else return malformed(fmt::format("{} must be a string or an array of strings", what));
    }
  } else if (v.is_bool()) {
    out.emplace_back(v.as_bool() ? "true" : "false");
  } else if (v.is_int64()) {
    out.emplace_back(std::to_string(v.as_int64()));
  } else if (v.is_double()) {
    out.emplace_back(fmt::format("{}", v.as_double()));
  } else {
    return malformed(fmt::format("{} must be a string or an array of strings", what));
  }
  return out;
}

Result<Statement> parse_statement(const json::value& v) {
  if (!v.is_object()) return malformed("Syntax errors in policy.");
  const auto& o = v.as_object();
  Statement s;
  for (const auto& [k, val] : o) {
    if (k == "Sid") {
      if (val.is_string()) s.sid = std::string(val.as_string());
    } else if (k == "Effect") {
      if (!val.is_string()) return malformed("Syntax errors in policy.");
      auto e = val.as_string();
      if (e == "Allow") s.allow = true;
      else if (e == "Deny") s.allow = false;
      else return malformed("Invalid effect: " + std::string(e));
    } else if (k == "Action" || k == "NotAction") {
      PIER_ASSIGN(s.actions, strings_of(val, k));
      s.not_action = k == "NotAction";
    } else if (k == "Resource" || k == "NotResource") {
      PIER_ASSIGN(s.resources, strings_of(val, k));
      s.not_resource = k == "NotResource";
    } else if (k == "Principal" || k == "NotPrincipal") {
      s.has_principal = true;
      if (val.is_string() && val.as_string() == "*") {
        s.principals["*"] = {"*"};
      } else if (val.is_object()) {
        for (const auto& [pk, pv] : val.as_object()) {
          PIER_ASSIGN(auto ids, strings_of(pv, "Principal"));
          s.principals[std::string(pk)] = std::move(ids);
        }
      } else {
        return malformed("Invalid principal in policy");
      }
    } else if (k == "Condition") {
      if (!val.is_object()) return malformed("Syntax errors in policy.");
      for (const auto& [op, block] : val.as_object()) {
        if (!block.is_object()) return malformed("Syntax errors in policy.");
        for (const auto& [key, cv] : block.as_object()) {
          Condition c;
          c.op = std::string(op);
          c.key = std::string(key);
          PIER_ASSIGN(c.values, strings_of(cv, "Condition"));
          s.conditions.push_back(std::move(c));
        }
      }
    } else {
      return malformed(fmt::format("Policy statement has an unknown element: {}",
                                   std::string_view(k)));
    }
  }
  if (!o.contains("Effect")) return malformed("Missing required field Effect");
  if (!o.contains("Action") && !o.contains("NotAction"))
    return malformed("Policy statement must contain actions.");
  return s;
}

bool match_any(const std::vector<std::string>& patterns, std::string_view value, bool icase) {
  for (const auto& p : patterns)
    if (str::glob_match(p, value, icase)) return true;
  return false;
}

std::optional<double> as_number(std::string_view s) {
  try {
    size_t n = 0;
    double d = std::stod(std::string(s), &n);
    if (n != s.size()) return std::nullopt;
    return d;
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<double> as_date(std::string_view s) {
  if (auto d = time::parse_iso8601(s)) return d;
  return as_number(s);
}

bool cidr_contains(std::string_view cidr, std::string_view ip) {
  boost::system::error_code ec;
  auto slash = cidr.find('/');
  auto net = boost::asio::ip::make_address(std::string(cidr.substr(0, slash)), ec);
  if (ec) return false;
  auto addr = boost::asio::ip::make_address(std::string(ip), ec);
  if (ec || net.is_v4() != addr.is_v4()) return false;
  if (net.is_v4()) {
    int bits = slash == std::string_view::npos ? 32 : std::atoi(std::string(cidr.substr(slash + 1)).c_str());
    if (bits < 0 || bits > 32) return false;
    uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
    return (net.to_v4().to_uint() & mask) == (addr.to_v4().to_uint() & mask);
  }
  int bits = slash == std::string_view::npos ? 128 : std::atoi(std::string(cidr.substr(slash + 1)).c_str());
  auto a = net.to_v6().to_bytes(), b = addr.to_v6().to_bytes();
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    uint8_t m = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a[static_cast<size_t>(i)] & m) != (b[static_cast<size_t>(i)] & m)) return false;
  }
  return true;
}

// One value of the request against the condition's values (any may match).
// Returns nullopt for an operator pier does not know.
std::optional<bool> match_value(std::string_view op, std::string_view actual,
                                const std::vector<std::string>& wanted) {
  auto any = [&](auto pred) {
    for (const auto& w : wanted)
      if (pred(w)) return true;
    return false;
  };
  auto num_cmp = [&](auto cmp) {
    auto a = as_number(actual);
    return a && any([&](const std::string& w) {
             auto b = as_number(w);
             return b && cmp(*a, *b);
           });
  };
  auto date_cmp = [&](auto cmp) {
    auto a = as_date(actual);
    return a && any([&](const std::string& w) {
             auto b = as_date(w);
             return b && cmp(*a, *b);
           });
  };
  if (op == "StringEquals") return any([&](const std::string& w) { return w == actual; });
  if (op == "StringNotEquals") return !any([&](const std::string& w) { return w == actual; });
  if (op == "StringEqualsIgnoreCase")
    return any([&](const std::string& w) { return str::iequals(w, actual); });
  if (op == "StringNotEqualsIgnoreCase")
    return !any([&](const std::string& w) { return str::iequals(w, actual); });
  if (op == "StringLike" || op == "ArnLike")
    return any([&](const std::string& w) { return str::glob_match(w, actual, false); });
  if (op == "StringNotLike" || op == "ArnNotLike")
    return !any([&](const std::string& w) { return str::glob_match(w, actual, false); });
  if (op == "ArnEquals")
    return any([&](const std::string& w) { return str::glob_match(w, actual, false); });
  if (op == "ArnNotEquals")
    return !any([&](const std::string& w) { return str::glob_match(w, actual, false); });
  if (op == "Bool")
    return any([&](const std::string& w) { return str::iequals(w, actual); });
  if (op == "NumericEquals") return num_cmp([](double a, double b) { return a == b; });
  if (op == "NumericNotEquals") return !num_cmp([](double a, double b) { return a == b; });
  if (op == "NumericLessThan") return num_cmp([](double a, double b) { return a < b; });
  if (op == "NumericLessThanEquals") return num_cmp([](double a, double b) { return a <= b; });
  if (op == "NumericGreaterThan") return num_cmp([](double a, double b) { return a > b; });
  if (op == "NumericGreaterThanEquals") return num_cmp([](double a, double b) { return a >= b; });
  if (op == "DateEquals") return date_cmp([](double a, double b) { return a == b; });
  if (op == "DateNotEquals") return !date_cmp([](double a, double b) { return a == b; });
  if (op == "DateLessThan") return date_cmp([](double a, double b) { return a < b; });
  if (op == "DateLessThanEquals") return date_cmp([](double a, double b) { return a <= b; });
  if (op == "DateGreaterThan") return date_cmp([](double a, double b) { return a > b; });
  if (op == "DateGreaterThanEquals") return date_cmp([](double a, double b) { return a >= b; });
  if (op == "IpAddress")
    return any([&](const std::string& w) { return cidr_contains(w, actual); });
  if (op == "NotIpAddress")
    return !any([&](const std::string& w) { return cidr_contains(w, actual); });
  return std::nullopt;
}

const std::vector<std::string>* context_values(const Request& req, std::string_view key) {
  for (const auto& [k, v] : req.context)
    if (str::iequals(k, key)) return &v;
  return nullptr;
}

bool condition_holds(const Condition& c, const Request& req) {
  std::string_view op = c.op;
  enum class Set { kNone, kAny, kAll } set = Set::kNone;
  if (op.starts_with("ForAnyValue:")) {
    set = Set::kAny;
    op.remove_prefix(12);
  } else if (op.starts_with("ForAllValues:")) {
    set = Set::kAll;
    op.remove_prefix(13);
  }
  const auto* actual = context_values(req, c.key);
  if (op == "Null") {
    bool want_null = !c.values.empty() && str::iequals(c.values[0], "true");
    bool is_null = actual == nullptr || actual->empty();
    return want_null == is_null;
  }
  bool if_exists = false;
  if (op.ends_with("IfExists")) {
    if_exists = true;
    op.remove_suffix(8);
  }
  if (actual == nullptr || actual->empty()) {
    // A missing key: IfExists and ForAllValues are satisfied, everything else
    // (including the negated operators) is not.
    return if_exists || set == Set::kAll;
  }
  switch (set) {
    case Set::kAll:
      for (const auto& a : *actual) {
        auto m = match_value(op, a, c.values);
        if (!m || !*m) return false;
      }
      return true;
    case Set::kAny:
    case Set::kNone:
      for (const auto& a : *actual) {
        auto m = match_value(op, a, c.values);
        if (!m) return false;
        if (*m) return true;
      }
      return false;
  }
  return false;
}

bool statement_applies(const Statement& s, const Request& req) {
  bool action_hit = match_any(s.actions, req.action, /*icase=*/true);
  if (s.not_action ? action_hit : !action_hit) return false;
  if (!s.resources.empty()) {
    bool res_hit = match_any(s.resources, req.resource, /*icase=*/false);
    if (s.not_resource ? res_hit : !res_hit) return false;
  } else if (!s.has_principal) {
    // An identity statement without Resource cannot match (AWS rejects such
    // documents at PutRolePolicy; this keeps evaluation safe regardless).
    return false;
  }
  for (const auto& c : s.conditions)
    if (!condition_holds(c, req)) return false;
  return true;
}

}  // namespace

Result<Policy> parse_policy(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return malformed("Syntax errors in policy.");
  Policy p;
  const auto& o = v.as_object();
  if (auto* ver = o.if_contains("Version")) {
    if (!ver->is_string()) return malformed("Syntax errors in policy.");
    p.version = std::string(ver->as_string());
    if (p.version != "2012-10-17" && p.version != "2008-10-17")
      return malformed("The policy failed legacy parsing");
  }
  const auto* st = o.if_contains("Statement");
  if (!st) return malformed("Syntax errors in policy.");
  if (st->is_object()) {
    PIER_ASSIGN(auto s, parse_statement(*st));
    p.statements.push_back(std::move(s));
  } else if (st->is_array()) {
    for (const auto& e : st->as_array()) {
      PIER_ASSIGN(auto s, parse_statement(e));
      p.statements.push_back(std::move(s));
    }
  } else {
    return malformed("Syntax errors in policy.");
  }
  for (const auto& [k, _] : o)
    if (k != "Version" && k != "Statement" && k != "Id")
      return malformed(fmt::format("Policy document has an unknown element: {}",
                                   std::string_view(k)));
  return p;
}

std::string_view decision_name(Decision d) {
  switch (d) {
    case Decision::kAllow: return "Allow";
    case Decision::kExplicitDeny: return "ExplicitDeny";
    case Decision::kImplicitDeny: return "ImplicitDeny";
  }
  return "ImplicitDeny";
}

Decision evaluate(const std::vector<Policy>& policies, const Request& req) {
  bool allowed = false;
  for (const auto& p : policies) {
    for (const auto& s : p.statements) {
      if (s.has_principal) continue;
      if (!statement_applies(s, req)) continue;
      if (!s.allow) return Decision::kExplicitDeny;
      allowed = true;
    }
  }
  return allowed ? Decision::kAllow : Decision::kImplicitDeny;
}

Decision evaluate_resource_policy(const Policy& policy, const Request& req,
                                  std::string_view principal_type,
                                  const std::vector<std::string>& principal_ids) {
  bool allowed = false;
  for (const auto& s : policy.statements) {
    bool principal_hit = false;
    for (const auto& [type, ids] : s.principals) {
      if (type == "*") {
        principal_hit = true;
        continue;
      }
      if (type != principal_type) continue;
      for (const auto& id : ids)
        for (const auto& pid : principal_ids)
          if (id == "*" || id == pid) principal_hit = true;
    }
    if (!principal_hit) continue;
    bool action_hit = match_any(s.actions, req.action, true);
    if (s.not_action ? action_hit : !action_hit) continue;
    bool cond = true;
    for (const auto& c : s.conditions)
      if (!condition_holds(c, req)) cond = false;
    if (!cond) continue;
    if (!s.allow) return Decision::kExplicitDeny;
    allowed = true;
  }
  return allowed ? Decision::kAllow : Decision::kImplicitDeny;
}

}  // namespace pier::iam

#include "services/iam/iam.h"

#include <fmt/format.h>

#include "aws/arn.h"
#include "common/ids.h"
#include "common/strings.h"
#include "services/iam/managed_policies.h"
#include "services/util.h"

namespace pier::svc::iam {

using aws::RequestContext;
using store::Db;

namespace {

Error no_such(std::string msg) { return Error::not_found("NoSuchEntity", std::move(msg)); }

std::string encoded(std::string_view doc) { return str::uri_encode(doc); }

Status check_policy(std::string_view doc) {
  auto p = pier::iam::parse_policy(doc);
  if (!p.ok()) {
    boost::system::error_code ec;
    (void)json::parse(doc, ec);
    if (ec) return Error::invalid("MalformedPolicyDocument", "This policy contains invalid Json");
    return std::move(p).error();
  }
  return {};
}

std::string normalized_path(const json::object& in) {
  std::string path = get_string(in, "Path", "/");
  return path;
}

Status check_path(std::string_view path) {
  if (path.empty() || path.front() != '/' || path.back() != '/')
    return Error::invalid("ValidationError",
                          "The specified value for path is invalid. It must begin and end with / "
                          "and contain only alphanumeric characters and/or / characters.");
  return {};
}

Result<std::optional<json::object>> load_role(Db& db, const std::string& account,
                                              const std::string& name) {
  PIER_ASSIGN(auto* st, db.prepare("SELECT doc FROM iam_roles WHERE account=? AND name=?"));
  st->args(account, name);
  PIER_ASSIGN(bool row, st->step());
  if (!row) return std::optional<json::object>();
  PIER_ASSIGN(auto doc, parse_object(st->text(0)));
  st->reset();
  return std::optional<json::object>(std::move(doc));
}

Result<json::object> require_role(Db& db, const std::string& account, const std::string& name) {
  PIER_ASSIGN(auto r, load_role(db, account, name));
  if (!r) return no_such(fmt::format("The role with name {} cannot be found.", name));
  return std::move(*r);
}

// A customer-managed or AWS-managed policy, as IAM's Policy shape.
Result<std::optional<json::object>> load_policy(Db& db, const std::string& arn) {
  if (const auto* m = find_aws_managed(arn)) {
    json::object p;
    p["PolicyName"] = m->name;
    p["PolicyId"] = m->policy_id;
    p["Arn"] = arn;
    p["Path"] = m->path;
    p["DefaultVersionId"] = m->version_id;
    p["AttachmentCount"] = 0;
    p["PermissionsBoundaryUsageCount"] = 0;
    p["IsAttachable"] = true;
    p["Description"] = m->description;
    p["CreateDate"] = 1423000000.0;
    p["UpdateDate"] = 1423000000.0;
    return std::optional<json::object>(std::move(p));
  }
  PIER_ASSIGN(auto* st, db.prepare("SELECT doc FROM iam_policies WHERE arn=?"));
  st->args(arn);
  PIER_ASSIGN(bool row, st->step());
  if (!row) return std::optional<json::object>();
  PIER_ASSIGN(auto doc, parse_object(st->text(0)));
  st->reset();
  return std::optional<json::object>(std::move(doc));
}

Result<std::string> policy_document(Db& db, const std::string& arn, const std::string& version) {
  if (const auto* m = find_aws_managed(arn)) {
    if (version != m->version_id)
      return no_such(fmt::format("Policy {} version {} does not exist or is not attachable.", arn, version));
    return std::string(m->document);
  }
  PIER_ASSIGN(auto* st, db.prepare("SELECT document FROM iam_policy_versions WHERE arn=? AND version_id=?"));
  st->args(arn, version);
  PIER_ASSIGN(bool row, st->step());
  if (!row)
    return no_such(fmt::format("Policy {} version {} does not exist or is not attachable.", arn, version));
  std::string d = st->text(0);
  st->reset();
  return d;
}

Result<int64_t> count(Db& db, std::string_view sql, const std::string& a, const std::string& b) {
  PIER_ASSIGN(auto* st, db.prepare(sql));
  st->args(a, b);
  PIER_ASSIGN(bool row, st->step());
  int64_t n = row ? st->integer(0) : 0;
  st->reset();
  return n;
}

json::object with_truncated(json::object o) {
  o["IsTruncated"] = false;
  return o;
}

}  // namespace

IamService::IamService(store::Store& store, time::Clock clock, Config config)
    : store_(store), clock_(std::move(clock)), config_(std::move(config)) {}

Result<std::optional<json::object>> IamService::role_by_arn(const std::string& arn) {
  auto a = aws::Arn::parse(arn);
  if (!a || a->service != "iam" || !a->resource.starts_with("role/"))
    return std::optional<json::object>();
  std::string name = a->resource.substr(a->resource.rfind('/') + 1);
  return store_.read([&](Db& db) -> Result<std::optional<json::object>> {
    PIER_ASSIGN(auto r, load_role(db, a->account, name));
    if (r && get_string(*r, "Arn") != arn) return std::optional<json::object>();
    return r;
  });
}

Result<std::vector<pier::iam::Policy>> IamService::role_policies(const std::string& account,
                                                                const std::string& role) {
  return store_.read([&](Db& db) -> Result<std::vector<pier::iam::Policy>> {
    std::vector<pier::iam::Policy> out;
    PIER_ASSIGN(auto* st, db.prepare("SELECT document FROM iam_role_policies WHERE account=? AND role=?"));
    st->args(account, role);
    PIER_ASSIGN(std::vector<std::string> docs, st->strings());
    PIER_ASSIGN(auto* at, db.prepare("SELECT policy_arn FROM iam_role_attachments WHERE account=? AND role=?"));
    at->args(account, role);
    PIER_ASSIGN(std::vector<std::string> arns, at->strings());
    for (const auto& arn : arns) {
      PIER_ASSIGN(auto p, load_policy(db, arn));
      if (!p) continue;
      PIER_ASSIGN(auto d, policy_document(db, arn, get_string(*p, "DefaultVersionId", "v1")));
      docs.push_back(std::move(d));
    }
    for (const auto& d : docs) {
      auto p = pier::iam::parse_policy(d);
      // Documents are validated when stored; one that no longer parses grants nothing.
      if (p.ok()) out.push_back(std::move(p).value());
    }
    return out;
  });
}

aws::ServiceDef IamService::definition() {
  const std::string account = config_.account;
  auto role_arn_of = [account](const RequestContext&, const json::object& in) {
    aws::Authz a;
    a.resource = fmt::format("arn:aws:iam::{}:role/{}", account, get_string(in, "RoleName"));
    return a;
  };
  aws::ServiceDef def;
  def.model_id = "iam";

  def.actions.push_back({"CreateRole", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "RoleName");
    std::string path = normalized_path(in);
    PIER_TRY(check_path(path));
    std::string trust = get_string(in, "AssumeRolePolicyDocument");
    PIER_TRY(check_policy(trust));
    json::object role;
    role["Path"] = path;
    role["RoleName"] = name;
    role["RoleId"] = ids::unique_id("AROA");
    role["Arn"] = fmt::format("arn:aws:iam::{}:role{}{}", ctx.principal.account, path, name);
    role["CreateDate"] = ctx.now;
    role["AssumeRolePolicyDocument"] = trust;
    if (in.contains("Description")) role["Description"] = in["Description"];
    role["MaxSessionDuration"] = get_int(in, "MaxSessionDuration").value_or(3600);
    if (auto d = get_int(in, "MaxSessionDuration"); d && (*d < 3600 || *d > 43200))
      return Error::invalid("ValidationError",
                            fmt::format("1 validation error detected: Value '{}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value less than or equal to 43200", *d));
    auto r = store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto existing, load_role(db, ctx.principal.account, name));
      if (existing)
        return Error::conflict("EntityAlreadyExists", fmt::format("Role with name {} already exists.", name));
      PIER_ASSIGN(auto* st, db.prepare("INSERT INTO iam_roles(account, name, arn, role_id, doc) VALUES(?,?,?,?,?)"));
      st->args(ctx.principal.account, name, get_string(role, "Arn"), get_string(role, "RoleId"),
               json::serialize(role));
      PIER_TRY(st->run());
      if (const auto* tags = get_array(in, "Tags"))
        PIER_TRY(put_tags(db, get_string(role, "Arn"), *tags, "Key", "Value"));
      return {};
    });
    PIER_TRY(r);
    role["AssumeRolePolicyDocument"] = encoded(trust);
    if (const auto* tags = get_array(in, "Tags"); tags && !tags->empty()) role["Tags"] = *tags;
    return json::object{{"Role", role}};
  }, "", role_arn_of});

  def.actions.push_back({"GetRole", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "RoleName");
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto role, require_role(db, ctx.principal.account, name));
      role["AssumeRolePolicyDocument"] = encoded(get_string(role, "AssumeRolePolicyDocument"));
      PIER_ASSIGN(auto tags, list_tags(db, get_string(role, "Arn"), "Key", "Value"));
      if (!tags.empty()) role["Tags"] = std::move(tags);
      role["RoleLastUsed"] = json::object();
      return json::object{{"Role", role}};
    });
  }, "", role_arn_of});

  def.actions.push_back({"ListRoles", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string prefix = get_string(in, "PathPrefix", "/");
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto* st, db.prepare("SELECT doc FROM iam_roles WHERE account=? ORDER BY name"));
      st->args(ctx.principal.account);
      json::array roles;
      for (;;) {
        PIER_ASSIGN(bool row, st->step());
        if (!row) break;
        PIER_ASSIGN(auto role, parse_object(st->text(0)));
        if (!get_string(role, "Path").starts_with(prefix)) continue;
        role["AssumeRolePolicyDocument"] = encoded(get_string(role, "AssumeRolePolicyDocument"));
        roles.push_back(std::move(role));
      }
      return with_truncated(json::object{{"Roles", roles}});
    });
  }});

  def.actions.push_back({"DeleteRole", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "RoleName");
    const std::string& acct = ctx.principal.account;
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto role, require_role(db, acct, name));
      PIER_ASSIGN(int64_t inl, count(db, "SELECT count(*) FROM iam_role_policies WHERE account=? AND role=?", acct, name));
      if (inl) return Error::conflict("DeleteConflict", "Cannot delete entity, must delete policies first.");
      PIER_ASSIGN(int64_t att, count(db, "SELECT count(*) FROM iam_role_attachments WHERE account=? AND role=?", acct, name));
      if (att) return Error::conflict("DeleteConflict", "Cannot delete entity, must detach all policies first.");
      PIER_ASSIGN(auto* st, db.prepare("DELETE FROM iam_roles WHERE account=? AND name=?"));
      st->args(acct, name);
      PIER_TRY(st->run());
      return drop_tags(db, get_string(role, "Arn"));
    }));
    return json::object();
  }, "", role_arn_of});

  def.actions.push_back({"UpdateAssumeRolePolicy", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "RoleName");
    std::string doc = get_string(in, "PolicyDocument");
    PIER_TRY(check_policy(doc));
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto role, require_role(db, ctx.principal.account, name));
      role["AssumeRolePolicyDocument"] = doc;
      PIER_ASSIGN(auto* st, db.prepare("UPDATE iam_roles SET doc=? WHERE account=? AND name=?"));
      st->args(json::serialize(role), ctx.principal.account, name);
      return st->run();
    }));
    return json::object();
  }, "", role_arn_of});

  def.actions.push_back({"PutRolePolicy", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string role = get_string(in, "RoleName");
    std::string name = get_string(in, "PolicyName");
    std::string doc = get_string(in, "PolicyDocument");
    PIER_TRY(check_policy(doc));
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto r, require_role(db, ctx.principal.account, role));
      (void)r;
      PIER_ASSIGN(auto* st, db.prepare(
          "INSERT INTO iam_role_policies(account, role, name, document) VALUES(?,?,?,?) "
          "ON CONFLICT(account, role, name) DO UPDATE SET document=excluded.document"));
      st->args(ctx.principal.account, role, name, doc);
      return st->run();
    }));
    return json::object();
  }, "", role_arn_of});

  def.actions.push_back({"GetRolePolicy", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string role = get_string(in, "RoleName");
    std::string name = get_string(in, "PolicyName");
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto r, require_role(db, ctx.principal.account, role));
      PIER_ASSIGN(auto* st, db.prepare("SELECT name, document FROM iam_role_policies WHERE account=? AND role=? AND name=?"));
      st->args(ctx.principal.account, role, name);
      PIER_ASSIGN(bool row, st->step());
      if (!row) return no_such(fmt::format("The role policy with name {} cannot be found.", name));
      json::object out{{"RoleName", get_string(r, "RoleName")},
                       {"PolicyName", st->text(0)},
                       {"PolicyDocument", encoded(st->text(1))}};
      st->reset();
      return out;
    });
  }, "", role_arn_of});

  def.actions.push_back({"ListRolePolicies", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string role = get_string(in, "RoleName");
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_TRY(require_role(db, ctx.principal.account, role));
      PIER_ASSIGN(auto* st, db.prepare("SELECT name FROM iam_role_policies WHERE account=? AND role=? ORDER BY name"));
      st->args(ctx.principal.account, role);
      PIER_ASSIGN(std::vector<std::string> found, st->strings());
      json::array names;
      for (auto& n : found) names.push_back(json::string(n));
      return with_truncated(json::object{{"PolicyNames", names}});
    });
  }, "", role_arn_of});

  def.actions.push_back({"DeleteRolePolicy", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string role = get_string(in, "RoleName");
    std::string name = get_string(in, "PolicyName");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_TRY(require_role(db, ctx.principal.account, role));
      PIER_ASSIGN(auto* st, db.prepare("DELETE FROM iam_role_policies WHERE account=? AND role=? AND name=?"));
      st->args(ctx.principal.account, role, name);
      PIER_TRY(st->run());
      if (db.changes() == 0) return no_such(fmt::format("The role policy with name {} cannot be found.", name));
      return {};
    }));
    return json::object();
  }, "", role_arn_of});

  def.actions.push_back({"CreatePolicy", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string name = get_string(in, "PolicyName");
    std::string path = normalized_path(in);
    PIER_TRY(check_path(path));
    std::string doc = get_string(in, "PolicyDocument");
    PIER_TRY(check_policy(doc));
    json::object p;
    p["PolicyName"] = name;
    p["PolicyId"] = ids::unique_id("ANPA");
    p["Arn"] = fmt::format("arn:aws:iam::{}:policy{}{}", ctx.principal.account, path, name);
    p["Path"] = path;
    p["DefaultVersionId"] = "v1";
    p["AttachmentCount"] = 0;
    p["PermissionsBoundaryUsageCount"] = 0;
    p["IsAttachable"] = true;
    if (in.contains("Description")) p["Description"] = in["Description"];
    p["CreateDate"] = ctx.now;
    p["UpdateDate"] = ctx.now;
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_ASSIGN(auto* chk, db.prepare("SELECT 1 FROM iam_policies WHERE account=? AND name=?"));
      chk->args(ctx.principal.account, name);
      PIER_ASSIGN(bool exists, chk->step());
      chk->reset();
      if (exists)
        return Error::conflict("EntityAlreadyExists",
                               fmt::format("A policy called {} already exists. Duplicate names are not allowed.", name));
      PIER_ASSIGN(auto* st, db.prepare("INSERT INTO iam_policies(account, arn, name, doc) VALUES(?,?,?,?)"));
      st->args(ctx.principal.account, get_string(p, "Arn"), name, json::serialize(p));
      PIER_TRY(st->run());
      PIER_ASSIGN(auto* v, db.prepare("INSERT INTO iam_policy_versions(arn, version_id, document, created) VALUES(?,?,?,?)"));
      v->args(get_string(p, "Arn"), "v1", doc, ctx.now);
      PIER_TRY(v->run());
      if (const auto* tags = get_array(in, "Tags"))
        PIER_TRY(put_tags(db, get_string(p, "Arn"), *tags, "Key", "Value"));
      return {};
    }));
    if (const auto* tags = get_array(in, "Tags"); tags && !tags->empty()) p["Tags"] = *tags;
    return json::object{{"Policy", p}};
  }});

  def.actions.push_back({"GetPolicy", [this](RequestContext&, json::object& in) -> Result<json::object> {
    std::string arn = get_string(in, "PolicyArn");
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto p, load_policy(db, arn));
      if (!p) return no_such(fmt::format("Policy {} was not found.", arn));
      PIER_ASSIGN(auto* st, db.prepare("SELECT count(*) FROM iam_role_attachments WHERE policy_arn=?"));
      st->args(arn);
      PIER_ASSIGN(bool row, st->step());
      (*p)["AttachmentCount"] = row ? st->integer(0) : 0;
      st->reset();
      PIER_ASSIGN(auto tags, list_tags(db, arn, "Key", "Value"));
      if (!tags.empty()) (*p)["Tags"] = std::move(tags);
      return json::object{{"Policy", *p}};
    });
  }});

  def.actions.push_back({"GetPolicyVersion", [this](RequestContext&, json::object& in) -> Result<json::object> {
    std::string arn = get_string(in, "PolicyArn");
    std::string version = get_string(in, "VersionId");
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_ASSIGN(auto p, load_policy(db, arn));
      if (!p) return no_such(fmt::format("Policy {} was not found.", arn));
      PIER_ASSIGN(auto doc, policy_document(db, arn, version));
      json::object v{{"Document", encoded(doc)},
                     {"VersionId", version},
                     {"IsDefaultVersion", get_string(*p, "DefaultVersionId") == version},
                     {"CreateDate", (*p)["CreateDate"]}};
      return json::object{{"PolicyVersion", v}};
    });
  }});

  def.actions.push_back({"ListPolicies", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string scope = get_string(in, "Scope", "All");
    return store_.read([&](Db& db) -> Result<json::object> {
      json::array out;
      if (scope != "Local") {
        for (const auto& m : aws_managed_policies()) {
          PIER_ASSIGN(auto p, load_policy(db, fmt::format("arn:aws:iam::aws:policy{}{}", m.path, m.name)));
          if (p) out.push_back(std::move(*p));
        }
      }
      if (scope != "AWS") {
        PIER_ASSIGN(auto* st, db.prepare("SELECT doc FROM iam_policies WHERE account=? ORDER BY name"));
        st->args(ctx.principal.account);
        for (;;) {
          PIER_ASSIGN(bool row, st->step());
          if (!row) break;
          PIER_ASSIGN(auto p, parse_object(st->text(0)));
          out.push_back(std::move(p));
        }
      }
      return with_truncated(json::object{{"Policies", out}});
    });
  }});

  def.actions.push_back({"AttachRolePolicy", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string role = get_string(in, "RoleName");
    std::string arn = get_string(in, "PolicyArn");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_TRY(require_role(db, ctx.principal.account, role));
      PIER_ASSIGN(auto p, load_policy(db, arn));
      if (!p) return no_such(fmt::format("Policy {} does not exist or is not attachable.", arn));
      PIER_ASSIGN(auto* st, db.prepare("INSERT OR IGNORE INTO iam_role_attachments(account, role, policy_arn) VALUES(?,?,?)"));
      st->args(ctx.principal.account, role, arn);
      return st->run();
    }));
    return json::object();
  }, "", role_arn_of});

  def.actions.push_back({"DetachRolePolicy", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string role = get_string(in, "RoleName");
    std::string arn = get_string(in, "PolicyArn");
    PIER_TRY(store_.write([&](Db& db) -> Status {
      PIER_TRY(require_role(db, ctx.principal.account, role));
      PIER_ASSIGN(auto* st, db.prepare("DELETE FROM iam_role_attachments WHERE account=? AND role=? AND policy_arn=?"));
      st->args(ctx.principal.account, role, arn);
      PIER_TRY(st->run());
      if (db.changes() == 0) return no_such(fmt::format("Policy {} was not found.", arn));
      return {};
    }));
    return json::object();
  }, "", role_arn_of});

  def.actions.push_back({"ListAttachedRolePolicies", [this](RequestContext& ctx, json::object& in) -> Result<json::object> {
    std::string role = get_string(in, "RoleName");
    return store_.read([&](Db& db) -> Result<json::object> {
      PIER_TRY(require_role(db, ctx.principal.account, role));
      PIER_ASSIGN(auto* st, db.prepare("SELECT policy_arn FROM iam_role_attachments WHERE account=? AND role=? ORDER BY policy_arn"));
      st->args(ctx.principal.account, role);
      PIER_ASSIGN(std::vector<std::string> arns, st->strings());
      json::array out;
      for (const auto& arn : arns) {
        PIER_ASSIGN(auto p, load_policy(db, arn));
        if (p) out.push_back(json::object{{"PolicyName", (*p)["PolicyName"]}, {"PolicyArn", arn}});
      }
      return with_truncated(json::object{{"AttachedPolicies", out}});
    });
  }, "", role_arn_of});

  return def;
}

// ---------------------------------------------------------------- identities

Identities::Identities(store::Store& store, IamService& iam) : store_(store), iam_(iam) {}

Result<std::optional<aws::IdentityProvider::Found>> Identities::find(std::string_view key) {
  const Config& c = iam_.config();
  if (key == c.root_access_key) {
    Found f;
    f.principal.kind = aws::Principal::Kind::kRoot;
    f.principal.account = c.account;
    f.principal.arn = fmt::format("arn:aws:iam::{}:root", c.account);
    f.principal.user_id = c.account;
    f.principal.access_key = std::string(key);
    f.secret = c.root_secret;
    return std::optional<Found>(std::move(f));
  }
  return store_.read([&](Db& db) -> Result<std::optional<Found>> {
    PIER_ASSIGN(auto* st, db.prepare(
        "SELECT secret, session_token, account, principal_arn, role_arn, role_id, session_name, "
        "expires FROM sts_credentials WHERE access_key=?"));
    st->args(key);
    PIER_ASSIGN(bool row, st->step());
    if (!row) return std::optional<Found>();
    Found f;
    f.secret = st->text(0);
    f.session_token = st->text(1);
    f.principal.kind = aws::Principal::Kind::kAssumedRole;
    f.principal.account = st->text(2);
    f.principal.arn = st->text(3);
    f.principal.role_arn = st->text(4);
    f.principal.session_name = st->text(6);
    f.principal.user_id = st->text(5) + ":" + f.principal.session_name;
    f.principal.expires = st->real(7);
    f.principal.access_key = std::string(key);
    f.principal.role_name = f.principal.role_arn.substr(f.principal.role_arn.rfind('/') + 1);
    st->reset();
    return std::optional<Found>(std::move(f));
  });
}

Result<std::vector<pier::iam::Policy>> Identities::policies(const aws::Principal& p) {
  if (p.kind != aws::Principal::Kind::kAssumedRole) return std::vector<pier::iam::Policy>{};
  return iam_.role_policies(p.account, p.role_name);
}

}  // namespace pier::svc::iam

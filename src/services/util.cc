#include "services/util.h"

#include "common/strings.h"

namespace pier::svc {

std::string get_string(const json::object& o, std::string_view key, std::string dflt) {
  if (auto* v = o.if_contains(key); v && v->is_string()) return std::string(v->as_string());
  return dflt;
}

std::optional<int64_t> get_int(const json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key); v && v->is_int64()) return v->as_int64();
  return std::nullopt;
}

bool get_bool(const json::object& o, std::string_view key, bool dflt) {
  if (auto* v = o.if_contains(key); v && v->is_bool()) return v->as_bool();
  return dflt;
}

const json::array* get_array(const json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key); v && v->is_array()) return &v->as_array();
  return nullptr;
}

std::vector<std::string> get_strings(const json::object& o, std::string_view key) {
  std::vector<std::string> out;
  if (const auto* a = get_array(o, key))
    for (const auto& v : *a)
      if (v.is_string()) out.emplace_back(v.as_string());
  return out;
}

Result<json::object> parse_object(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return Error::internal("store: a stored document is not JSON");
  return std::move(v.as_object());
}

Status put_tags(store::Db& db, std::string_view arn, const json::array& tags,
                std::string_view key_name, std::string_view value_name) {
  PIER_ASSIGN(auto* st, db.prepare(
                            "INSERT INTO tags(arn, key, value) VALUES(?,?,?) "
                            "ON CONFLICT(arn, key) DO UPDATE SET value=excluded.value"));
  for (const auto& t : tags) {
    if (!t.is_object()) continue;
    std::string k = get_string(t.as_object(), key_name);
    std::string v = get_string(t.as_object(), value_name);
    st->reset();
    st->args(arn, k, v);
    PIER_TRY(st->run());
  }
  return {};
}

Status remove_tags(store::Db& db, std::string_view arn, const std::vector<std::string>& keys) {
  PIER_ASSIGN(auto* st, db.prepare("DELETE FROM tags WHERE arn=? AND key=?"));
  for (const auto& k : keys) {
    st->reset();
    st->args(arn, k);
    PIER_TRY(st->run());
  }
  return {};
}

Status drop_tags(store::Db& db, std::string_view arn) {
  PIER_ASSIGN(auto* st, db.prepare("DELETE FROM tags WHERE arn=?"));
  st->args(arn);
  return st->run();
}

Result<json::array> list_tags(store::Db& db, std::string_view arn, std::string_view key_name,
                              std::string_view value_name) {
  PIER_ASSIGN(auto* st, db.prepare("SELECT key, value FROM tags WHERE arn=? ORDER BY key"));
  st->args(arn);
  json::array out;
  for (;;) {
    PIER_ASSIGN(bool row, st->step());
    if (!row) break;
    json::object t;
    t[key_name] = st->text(0);
    t[value_name] = st->text(1);
    out.push_back(std::move(t));
  }
  return out;
}

std::string page_token(size_t offset) { return str::base64_encode("o:" + std::to_string(offset)); }

std::optional<size_t> parse_page_token(std::string_view token) {
  auto d = str::base64_decode(token);
  if (!d || !d->starts_with("o:")) return std::nullopt;
  try {
    return static_cast<size_t>(std::stoull(d->substr(2)));
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace pier::svc

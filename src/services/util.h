// Small helpers shared by the service implementations: reading members of a
// decoded input document, tags kept by ARN, pagination tokens.
#pragma once

#include <boost/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "store/db.h"

namespace pier::svc {

namespace json = boost::json;

std::string get_string(const json::object& o, std::string_view key, std::string dflt = {});
std::optional<int64_t> get_int(const json::object& o, std::string_view key);
bool get_bool(const json::object& o, std::string_view key, bool dflt = false);
const json::array* get_array(const json::object& o, std::string_view key);
std::vector<std::string> get_strings(const json::object& o, std::string_view key);

Result<json::object> parse_object(std::string_view text);

// Tags by resource ARN. key_name/value_name are the member names the service
// spells ("key"/"value" for ECS, "Key"/"Value" for IAM).
Status put_tags(store::Db& db, std::string_view arn, const json::array& tags,
                std::string_view key_name, std::string_view value_name);
Status remove_tags(store::Db& db, std::string_view arn, const std::vector<std::string>& keys);
Status drop_tags(store::Db& db, std::string_view arn);
Result<json::array> list_tags(store::Db& db, std::string_view arn, std::string_view key_name,
                              std::string_view value_name);

// Opaque pagination tokens holding an offset.
std::string page_token(size_t offset);
std::optional<size_t> parse_page_token(std::string_view token);

}  // namespace pier::svc

// Small string helpers shared by every layer.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pier::str {

std::string lower(std::string_view s);
std::string_view trim(std::string_view s);
std::vector<std::string_view> split(std::string_view s, char sep);
bool starts_with_icase(std::string_view s, std::string_view prefix);
bool iequals(std::string_view a, std::string_view b);

std::string hex(std::string_view bytes);

// RFC 3986 percent-encoding as SigV4 defines it: unreserved characters stay,
// everything else is %XX (upper case). keep_slash leaves '/' alone.
std::string uri_encode(std::string_view s, bool keep_slash = false);
// Percent-decoding; plus_is_space for application/x-www-form-urlencoded.
std::optional<std::string> uri_decode(std::string_view s, bool plus_is_space = false);

// Base64 (standard alphabet, padded).
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

std::string xml_escape(std::string_view s);

// Glob match with '*' (any run) and '?' (one character), as IAM uses them.
bool glob_match(std::string_view pattern, std::string_view text, bool icase);

}  // namespace pier::str

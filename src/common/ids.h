// Identifiers in the shapes AWS uses.
#pragma once

#include <string>

namespace pier::ids {

std::string uuid4();                     // 8-4-4-4-12 lower-case hex
std::string hex_id(size_t n_chars);      // random lower-case hex
// AWS access key ids: 20 upper-case alphanumerics starting with prefix ("ASIA").
std::string access_key_id(const std::string& prefix);
std::string secret_key();                // 40 characters, base64 alphabet
std::string unique_id(const std::string& prefix);  // IAM ids such as "AROA…" (21 chars)

}  // namespace pier::ids

// Hashes and MACs (OpenSSL), returned as raw bytes in a std::string.
#pragma once

#include <string>
#include <string_view>

namespace pier::crypto {

std::string sha256(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);
// Compares in time independent of where the inputs differ.
bool constant_time_equal(std::string_view a, std::string_view b);
// Cryptographically random bytes.
std::string random_bytes(size_t n);

}  // namespace pier::crypto

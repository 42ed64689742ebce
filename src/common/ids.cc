#include "common/ids.h"

#include "common/crypto.h"
#include "common/strings.h"

#include <random>

namespace pier::ids {

std::string uuid4() {
  // Request ids need uniqueness, not secrecy: a per-thread generator seeded
  // from the OS is enough and far cheaper than the CSPRNG.
  thread_local std::mt19937_64 gen{[] {
    std::string seed = crypto::random_bytes(16);
    std::seed_seq seq(seed.begin(), seed.end());
    return std::mt19937_64(seq);
  }()};
  std::string b(16, '\0');
  for (int i = 0; i < 2; ++i) {
    uint64_t v = gen();
    for (int j = 0; j < 8; ++j) b[static_cast<size_t>(i * 8 + j)] = static_cast<char>(v >> (8 * j));
  }
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);
  std::string h = str::hex(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string hex_id(size_t n_chars) { return str::hex(crypto::random_bytes((n_chars + 1) / 2)).substr(0, n_chars); }

namespace {
std::string random_from(const char* alphabet, size_t alpha_len, size_t n) {
  std::string b = crypto::random_bytes(n);
  std::string out;
  out.reserve(n);
  for (unsigned char c : b) out.push_back(alphabet[c % alpha_len]);
  return out;
}
constexpr char kUpperAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
}  // namespace

std::string access_key_id(const std::string& prefix) {
  return prefix + random_from(kUpperAlnum, 32, 20 - prefix.size());
}

std::string secret_key() {
  static constexpr char kAlpha[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  return random_from(kAlpha, 64, 40);
}

std::string unique_id(const std::string& prefix) {
  return prefix + random_from(kUpperAlnum, 32, 21 - prefix.size());
}

}  // namespace pier::ids

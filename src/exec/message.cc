#include "exec/message.h"

#include <chrono>
#include <cstring>

#include "common/crypto.h"
#include "common/strings.h"

namespace pier::exec {
namespace {

void put_u32(std::string& out, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[at + static_cast<size_t>(i)] = static_cast<char>(v >> (24 - 8 * i));
}
void put_u64(std::string& out, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[at + static_cast<size_t>(i)] = static_cast<char>(v >> (56 - 8 * i));
}
uint32_t get_u32(std::string_view in, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[at + static_cast<size_t>(i)]);
  return v;
}
uint64_t get_u64(std::string_view in, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(in[at + static_cast<size_t>(i)]);
  return v;
}

// Field offsets (§1).
constexpr size_t kOffType = 4, kOffSchema = 36, kOffCreated = 40, kOffSeq = 48, kOffFlags = 56,
                 kOffId = 64, kOffDigest = 80, kOffPayloadType = 112, kOffPayloadLength = 116;

Error malformed(std::string msg) { return Error::invalid("MalformedMessage", std::move(msg)); }

}  // namespace

Uuid Uuid::random() {
  Uuid u;
  std::string r = crypto::random_bytes(16);
  std::memcpy(u.bytes.data(), r.data(), 16);
  u.bytes[6] = static_cast<uint8_t>((u.bytes[6] & 0x0f) | 0x40);
  u.bytes[8] = static_cast<uint8_t>((u.bytes[8] & 0x3f) | 0x80);
  return u;
}

std::optional<Uuid> Uuid::parse(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  Uuid u;
  size_t j = 0;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = nib(text[i]), lo = nib(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    u.bytes[j++] = static_cast<uint8_t>(hi * 16 + lo);
    i += 2;
  }
  return u;
}

std::string Uuid::str() const {
  std::string h = str::hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), 16));
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

uint64_t now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

Message make_message(std::string_view type, int64_t sequence, uint64_t flags,
                     PayloadType payload_type, std::string payload) {
  Message m;
  m.type = std::string(type);
  m.created_ms = now_ms();
  m.sequence = sequence;
  m.flags = flags;
  m.id = Uuid::random();
  m.payload_type = payload_type;
  m.payload = std::move(payload);
  return m;
}

Result<std::string> serialize(const Message& m) {
  if (m.type.size() > 32) return malformed("MessageType longer than 32 bytes: " + m.type);
  std::string out(kMinFrame + m.payload.size(), '\0');
  put_u32(out, 0, kHeaderLength);
  std::memset(out.data() + kOffType, ' ', 32);
  std::memcpy(out.data() + kOffType, m.type.data(), m.type.size());
  put_u32(out, kOffSchema, m.schema_version);
  put_u64(out, kOffCreated, m.created_ms);
  put_u64(out, kOffSeq, static_cast<uint64_t>(m.sequence));
  put_u64(out, kOffFlags, m.flags);
  // MessageId: the UUID's second half first (§1.2).
  std::memcpy(out.data() + kOffId, m.id.bytes.data() + 8, 8);
  std::memcpy(out.data() + kOffId + 8, m.id.bytes.data(), 8);
  std::string digest = crypto::sha256(m.payload);
  std::memcpy(out.data() + kOffDigest, digest.data(), 32);
  put_u32(out, kOffPayloadType, static_cast<uint32_t>(m.payload_type));
  put_u32(out, kOffPayloadLength, static_cast<uint32_t>(m.payload.size()));
  if (!m.payload.empty()) std::memcpy(out.data() + kMinFrame, m.payload.data(), m.payload.size());
  return out;
}

Result<Message> parse(std::string_view f) {
  if (f.size() < kMinFrame)
    return malformed("frame of " + std::to_string(f.size()) + " bytes is shorter than 120");
  Message m;
  m.header_length = get_u32(f, 0);
  if (static_cast<uint64_t>(m.header_length) + 4 > f.size())
    return malformed("HeaderLength " + std::to_string(m.header_length) + " beyond the frame");
  // MessageType: NULs trimmed from both ends, then surrounding whitespace.
  std::string_view t = f.substr(kOffType, 32);
  while (!t.empty() && t.front() == '\0') t.remove_prefix(1);
  while (!t.empty() && t.back() == '\0') t.remove_suffix(1);
  m.type = std::string(str::trim(t));
  m.schema_version = get_u32(f, kOffSchema);
  m.created_ms = get_u64(f, kOffCreated);
  m.sequence = static_cast<int64_t>(get_u64(f, kOffSeq));
  m.flags = get_u64(f, kOffFlags);
  std::memcpy(m.id.bytes.data() + 8, f.data() + kOffId, 8);
  std::memcpy(m.id.bytes.data(), f.data() + kOffId + 8, 8);
  std::memcpy(m.digest.data(), f.data() + kOffDigest, 32);
  m.payload_type = static_cast<PayloadType>(get_u32(f, kOffPayloadType));
  m.payload_length = get_u32(f, kOffPayloadLength);
  m.payload = std::string(f.substr(m.header_length + 4));
  return m;
}

Status validate(const Message& m, Receiver who) {
  if (who == Receiver::kClient && (m.type == message_type::kStartPublication ||
                                   m.type == message_type::kPausePublication))
    return {};
  if (m.header_length == 0) return malformed("HeaderLength cannot be zero");
  if (m.type.empty()) return malformed("MessageType is missing");
  if (m.created_ms == 0) return malformed("CreatedDate is missing");
  if (who == Receiver::kClient && m.payload_length != 0) {
    std::string d = crypto::sha256(m.payload);
    if (std::memcmp(d.data(), m.digest.data(), 32) != 0) return malformed("payload Hash is not valid");
  }
  return {};
}

}  // namespace pier::exec

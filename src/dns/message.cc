#include "dns/message.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <optional>

namespace pier::dns {
namespace {

uint16_t get16(std::string_view w, size_t p) {
  return static_cast<uint16_t>((static_cast<unsigned char>(w[p]) << 8) | static_cast<unsigned char>(w[p + 1]));
}

void put16(std::string& b, uint16_t v) {
  b += static_cast<char>(v >> 8);
  b += static_cast<char>(v & 0xff);
}

void put32(std::string& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v & 0xffff));
}

Error formerr(std::string what) { return Error::invalid("FormErr", "malformed DNS query: " + std::move(what)); }

// One label's bytes in Question::name's text form.
void append_label_text(std::string& out, std::string_view label) {
  for (char ch : label) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 'A' && c <= 'Z') {
      out += static_cast<char>(c - 'A' + 'a');
    } else if (c == '.' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x21 || c > 0x7e) {
      out += '\\';
      out += static_cast<char>('0' + c / 100);
      out += static_cast<char>('0' + c / 10 % 10);
      out += static_cast<char>('0' + c % 10);
    } else {
      out += static_cast<char>(c);
    }
  }
}

// Reads the name at pos (advancing pos past it, pointers followed elsewhere)
// into text (Question::name form) and wire (uncompressed, case kept) when given.
// A pointer must point into the message body (past the header) and strictly
// before the start of the run of labels it ends, which makes every chain of
// pointers finite; kMaxPointerJumps bounds the work besides.
Status read_name(std::string_view w, size_t& pos, std::string* text, std::string* wire) {
  size_t p = pos;
  size_t run_start = pos;
  size_t wire_len = 0;
  int jumps = 0;
  bool jumped = false;
  if (text) text->clear();
  if (wire) wire->clear();
  for (;;) {
    if (p >= w.size()) return formerr("a name runs past the end of the message");
    auto len = static_cast<unsigned char>(w[p]);
    if ((len & 0xC0) == 0xC0) {
      if (p + 1 >= w.size()) return formerr("a compression pointer runs past the end of the message");
      size_t target = get16(w, p) & 0x3FFF;
      if (target >= w.size()) return formerr("a compression pointer points past the end of the message");
      if (target < kHeaderSize || target >= run_start)
        return formerr("a compression pointer does not point back to an earlier name");
      if (++jumps > kMaxPointerJumps) return formerr("too many compression pointers in a name");
      if (!jumped) pos = p + 2;
      jumped = true;
      p = run_start = target;
      continue;
    }
    if (len & 0xC0) return formerr("a label longer than 63 bytes, or of an unknown type");
    if (len == 0) {
      if (!jumped) pos = p + 1;
      if (wire) *wire += '\0';
      return {};
    }
    if (p + 1 + len > w.size()) return formerr("a label runs past the end of the message");
    wire_len += 1 + len;
    if (wire_len + 1 > kMaxName) return formerr("a name longer than 255 bytes");
    std::string_view label = w.substr(p + 1, len);
    if (text) {
      if (!text->empty()) *text += '.';  // every label adds at least one character
      append_label_text(*text, label);
    }
    if (wire) {
      *wire += static_cast<char>(len);
      *wire += label;
    }
    p += 1 + len;
  }
}

struct Rr {
  uint16_t type = 0;
  uint16_t klass = 0;
  uint32_t ttl = 0;
  bool root_name = false;
};

// Reads (and checks) one resource record at pos.
Result<Rr> read_rr(std::string_view w, size_t& pos) {
  std::string name_wire;
  PIER_TRY(read_name(w, pos, nullptr, &name_wire));
  if (pos + 10 > w.size()) return formerr("a record runs past the end of the message");
  Rr rr;
  rr.root_name = name_wire.size() == 1;
  rr.type = get16(w, pos);
  rr.klass = get16(w, pos + 2);
  rr.ttl = static_cast<uint32_t>(get16(w, pos + 4)) << 16 | get16(w, pos + 6);
  size_t rdlen = get16(w, pos + 8);
  pos += 10;
  if (pos + rdlen > w.size()) return formerr("a record's data runs past the end of the message");
  pos += rdlen;
  return rr;
}

// The wire form of name for a response: its own wire_name, else encoded.
std::optional<std::string> question_wire(const Query& q) {
  if (!q.wire_name.empty()) return q.wire_name;
  auto enc = encode_name(q.q.name);
  if (!enc.ok()) return std::nullopt;
  return std::move(enc).value();
}

void put_header(std::string& b, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns, uint16_t ar) {
  put16(b, id);
  put16(b, flags);
  put16(b, qd);
  put16(b, an);
  put16(b, ns);
  put16(b, ar);
}

constexpr uint16_t kQr = 0x8000, kAa = 0x0400, kTc = 0x0200, kRd = 0x0100, kRa = 0x0080;
constexpr size_t kOptSize = 11;  // root name, type, class, TTL, empty rdata

}  // namespace

Result<Query> parse_query(std::string_view w, ParseError* why) {
  ParseError local;
  ParseError& e = why ? *why : local;
  e = ParseError{};
  if (w.size() < kHeaderSize) return formerr("shorter than a DNS header");
  e.have_id = true;
  e.id = get16(w, 0);
  uint16_t flags = get16(w, 2);
  e.response = (flags & kQr) != 0;
  e.opcode = static_cast<uint8_t>((flags >> 11) & 0xF);
  e.rd = (flags & kRd) != 0;
  if (e.response) return Error::invalid("NotAQuery", "a DNS response, not a query");
  if (e.opcode != 0) {
    e.rcode = kNotImp;
    return Error::invalid("NotImp", "DNS opcode " + std::to_string(e.opcode) + " is not supported");
  }
  uint16_t qd = get16(w, 4), an = get16(w, 6), ns = get16(w, 8), ar = get16(w, 10);
  if (qd != 1) return formerr(std::to_string(qd) + " questions, not one");

  Query q;
  q.id = e.id;
  q.rd = e.rd;
  size_t pos = kHeaderSize;
  PIER_TRY(read_name(w, pos, &q.q.name, &q.wire_name));
  if (pos + 4 > w.size()) return formerr("the question runs past the end of the message");
  q.q.type = get16(w, pos);
  q.q.klass = get16(w, pos + 2);
  pos += 4;
  for (unsigned i = 0; i < static_cast<unsigned>(an) + ns; ++i) PIER_TRY(read_rr(w, pos));
  for (unsigned i = 0; i < ar; ++i) {
    PIER_ASSIGN(Rr rr, read_rr(w, pos));
    if (rr.type != kTypeOpt) continue;
    if (q.edns) return formerr("more than one OPT record");
    if (!rr.root_name) return formerr("an OPT record not owned by the root");
    q.edns = true;
    q.edns_size = rr.klass;
  }
  return q;
}

size_t udp_limit(const Query& q) {
  if (!q.edns) return kClassicUdpSize;
  return std::clamp<size_t>(q.edns_size, kClassicUdpSize, kMaxUdpSize);
}

std::string build_response(const Query& q, const Answer& a, size_t max_size) {
  auto qname = question_wire(q);
  if (!qname) return build_error(q.id, kServFail, 0, q.rd);
  uint8_t rcode = a.rcode > 15 ? kServFail : a.rcode;

  std::vector<std::array<unsigned char, 4>> addrs;
  bool wants_a = (q.q.type == kTypeA || q.q.type == kTypeAny) && (q.q.klass == kClassIn || q.q.klass == kClassAny);
  if (rcode == kNoError && wants_a) {
    for (const auto& text : a.a) {
      std::array<unsigned char, 4> b{};
      if (inet_pton(AF_INET, text.c_str(), b.data()) == 1) addrs.push_back(b);
    }
  }
  constexpr size_t kARecordSize = 2 + 2 + 2 + 4 + 2 + 4;  // pointer, type, class, TTL, rdlength, address
  size_t fixed = kHeaderSize + qname->size() + 4 + (q.edns ? kOptSize : 0);
  size_t room = max_size > fixed ? (max_size - fixed) / kARecordSize : 0;
  size_t count = std::min(addrs.size(), room);
  bool truncated = count < addrs.size();

  uint16_t flags = kQr | kRa | rcode;
  if (a.authoritative) flags |= kAa;
  if (q.rd) flags |= kRd;
  if (truncated) flags |= kTc;
  std::string b;
  b.reserve(fixed + count * kARecordSize);
  put_header(b, q.id, flags, 1, static_cast<uint16_t>(count), 0, q.edns ? 1 : 0);
  b += *qname;
  put16(b, q.q.type);
  put16(b, q.q.klass);
  for (size_t i = 0; i < count; ++i) {
    put16(b, 0xC000 | kHeaderSize);  // the question's name
    put16(b, kTypeA);
    put16(b, kClassIn);
    put32(b, a.ttl);
    put16(b, 4);
    b.append(reinterpret_cast<const char*>(addrs[i].data()), 4);
  }
  if (q.edns) {
    b += '\0';
    put16(b, kTypeOpt);
    put16(b, static_cast<uint16_t>(kMaxUdpSize));
    put32(b, 0);  // extended rcode 0, version 0, no DO
    put16(b, 0);
  }
  return b;
}

std::string build_error(uint16_t id, uint8_t rcode, uint8_t opcode, bool rd) {
  uint16_t flags = static_cast<uint16_t>(kQr | kRa | ((opcode & 0xF) << 11) | (rcode & 0xF));
  if (rd) flags |= kRd;
  std::string b;
  put_header(b, id, flags, 0, 0, 0, 0);
  return b;
}

std::string build_error(const ParseError& why) { return build_error(why.id, why.rcode, why.opcode, why.rd); }

Result<std::string> build_query(uint16_t id, const Question& q, bool rd, uint16_t edns_size) {
  PIER_ASSIGN(std::string name, encode_name(q.name));
  std::string b;
  put_header(b, id, rd ? kRd : 0, 1, 0, 0, edns_size ? 1 : 0);
  b += name;
  put16(b, q.type);
  put16(b, q.klass);
  if (edns_size) {
    b += '\0';
    put16(b, kTypeOpt);
    put16(b, edns_size);
    put32(b, 0);
    put16(b, 0);
  }
  return b;
}

Result<std::string> encode_name(std::string_view name) {
  auto bad = [&](const std::string& what) {
    return Error::invalid("InvalidName", "cannot encode DNS name \"" + std::string(name) + "\": " + what);
  };
  if (name == "." || name.empty()) return std::string(1, '\0');
  if (name.back() == '.') {  // a trailing dot, unless escaped (an odd run of '\' before it)
    size_t slashes = 0;
    while (slashes + 1 < name.size() && name[name.size() - 2 - slashes] == '\\') ++slashes;
    if (slashes % 2 == 0) name.remove_suffix(1);
  }
  std::string out;
  std::string label;
  auto flush = [&]() -> bool {
    if (label.empty() || label.size() > kMaxLabel) return false;
    out += static_cast<char>(label.size());
    out += label;
    label.clear();
    return true;
  };
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '.') {
      if (!flush()) return bad("an empty label, or one over 63 bytes");
      continue;
    }
    if (c != '\\') {
      label += c;
      continue;
    }
    if (i + 1 >= name.size()) return bad("a '\\' at the end");
    char n = name[i + 1];
    if (n >= '0' && n <= '9') {
      int v = 0;
      for (size_t k = i + 1; k <= i + 3; ++k) {
        if (k >= name.size() || name[k] < '0' || name[k] > '9') return bad("a bad \\DDD escape");
        v = v * 10 + (name[k] - '0');
      }
      if (v > 255) return bad("a \\DDD escape over 255");
      label += static_cast<char>(v);
      i += 3;
    } else {
      label += n;
      i += 1;
    }
  }
  if (!flush()) return bad("an empty label, or one over 63 bytes");
  out += '\0';
  if (out.size() > kMaxName) return bad("longer than 255 bytes");
  return out;
}

}  // namespace pier::dns

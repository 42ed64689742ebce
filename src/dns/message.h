// pier::dns: the DNS wire format (RFC 1035, EDNS0 from RFC 6891) as far as a
// small authoritative-style server needs it: parse one query, build its
// response (A records only), build error replies. No recursion, no DNSSEC.
//
// Parsing is bounded throughout: every read is checked against the buffer,
// compression pointers must point strictly backwards (so a chain of them ends)
// and at most kMaxPointerJumps are followed per name, labels are at most 63
// bytes and names at most 255 on the wire. Anything else is an error, never a
// crash or an unbounded loop.
//
// Responses set RA=1 (recursion available). The server does not recurse, but it
// stands in for the VPC's resolver (AmazonProvidedDNS, which sets RA), and stub
// resolvers (glibc, Go) take an empty NOERROR answer with neither AA nor RA for
// a lame referral and move on to the next nameserver.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pier::dns {

// Resource record types and classes that matter here.
constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeNs = 2;
constexpr uint16_t kTypeCname = 5;
constexpr uint16_t kTypeSoa = 6;
constexpr uint16_t kTypePtr = 12;
constexpr uint16_t kTypeAaaa = 28;
constexpr uint16_t kTypeOpt = 41;
constexpr uint16_t kTypeIxfr = 251;
constexpr uint16_t kTypeAxfr = 252;
constexpr uint16_t kTypeAny = 255;
constexpr uint16_t kClassIn = 1;
constexpr uint16_t kClassAny = 255;

// Response codes.
constexpr uint8_t kNoError = 0;
constexpr uint8_t kFormErr = 1;
constexpr uint8_t kServFail = 2;
constexpr uint8_t kNxDomain = 3;
constexpr uint8_t kNotImp = 4;
constexpr uint8_t kRefused = 5;

// Sizes.
constexpr size_t kHeaderSize = 12;
constexpr size_t kClassicUdpSize = 512;  // UDP without EDNS
constexpr size_t kMaxUdpSize = 1232;     // what we answer with at most over UDP (DNS flag day 2020)
constexpr size_t kMaxTcpSize = 65535;    // the two-byte length prefix's limit
constexpr size_t kMaxLabel = 63;
constexpr size_t kMaxName = 255;  // on the wire: length bytes and the root's zero included
constexpr int kMaxPointerJumps = 64;

struct Question {
  // Lower-case, no trailing dot; the root is "". Bytes that are not printable
  // ASCII, and '.' or '\' inside a label, are escaped as in zone files ("\.",
  // "\\", "\DDD"), so a label with a dot in it never looks like two labels.
  std::string name;
  uint16_t type = kTypeA;
  uint16_t klass = kClassIn;
};

struct Query {
  uint16_t id = 0;
  bool rd = false;  // recursion desired: copied into the response
  Question q;
  bool edns = false;       // an OPT record came in the additional section
  uint16_t edns_size = 0;  // its UDP payload size, as sent (0 without EDNS)
  // The question's name as sent: wire form, uncompressed, case kept. Echoed in
  // the response (resolvers using 0x20 case randomisation compare it exactly);
  // when empty, the response encodes q.name instead.
  std::string wire_name;
};

// Why parse_query refused a packet, and whether (and how) to answer it.
struct ParseError {
  bool have_id = false;   // the 12-byte header was there
  bool response = false;  // QR=1: not a query; never answered
  uint16_t id = 0;
  uint8_t opcode = 0;
  bool rd = false;
  uint8_t rcode = kFormErr;  // kFormErr, or kNotImp for an opcode other than QUERY

  // A reply is due (FORMERR or NOTIMP, see build_error) when this is true;
  // otherwise the packet is dropped.
  bool answerable() const { return have_id && !response; }
};

// One standard query: QR=0, opcode QUERY, exactly one question. Records in the
// answer and authority sections are skipped (checked for well-formedness); in
// the additional section one OPT record is noted (a second one is FORMERR),
// others are skipped; bytes after the last record are ignored. On failure the
// Error (kind kInvalid, code "FormErr", "NotImp" or "NotAQuery") says why, and
// *why, when given, says whether and how to reply.
Result<Query> parse_query(std::string_view wire, ParseError* why = nullptr);

struct Answer {
  uint8_t rcode = kNoError;    // kNoError, kServFail, kNxDomain, kRefused, ...
  std::vector<std::string> a;  // IPv4 addresses as text; entries that are not are skipped
  uint32_t ttl = 60;
  bool authoritative = true;
};

// The largest UDP response for q: 512 without EDNS, else its EDNS size
// clamped to [512, 1232].
size_t udp_limit(const Query& q);

// The response to q: id and RD copied, QR=1, AA as the answer says, RA=1, the
// question echoed, then (NOERROR only, for type A or ANY in class IN or ANY)
// one A record per address, named by a compression pointer to the question,
// and an OPT record (UDP size 1232) when q had EDNS. The A records that do not
// fit in max_size are left out and TC is set. Other types for a name that
// exists come back NOERROR without answers (NODATA). An rcode above 15 is
// reported as SERVFAIL (no extended rcodes). A Query without a wire_name whose
// name cannot be encoded gets SERVFAIL without a question.
std::string build_response(const Query& q, const Answer& a, size_t max_size);

// A header-only reply (no question): FORMERR, NOTIMP, SERVFAIL, REFUSED...
std::string build_error(uint16_t id, uint8_t rcode, uint8_t opcode = 0, bool rd = false);
// The reply parse_query's ParseError calls for (only if why.answerable()).
std::string build_error(const ParseError& why);

// A query for q (RD set when rd; an OPT record with edns_size when non-zero).
// Errors: the name cannot be encoded.
Result<std::string> build_query(uint16_t id, const Question& q, bool rd = true, uint16_t edns_size = 0);

// A name in Question::name's text form (case kept, trailing dot optional,
// escapes understood) to wire form; errors for an empty label, a label over 63
// bytes, a name over 255 bytes, or a bad escape.
Result<std::string> encode_name(std::string_view name);

}  // namespace pier::dns

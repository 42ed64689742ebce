#include "dns/message.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "client/resolve.h"
#include "common/strings.h"
#include "dns/server.h"

namespace pier::dns {
namespace {

namespace asio = boost::asio;
using udp = asio::ip::udp;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

std::string bytes(std::initializer_list<int> b) {
  std::string out;
  for (int c : b) out += static_cast<char>(c);
  return out;
}

uint16_t u16(const std::string& w, size_t p) {
  return static_cast<uint16_t>(static_cast<unsigned char>(w.at(p)) << 8 | static_cast<unsigned char>(w.at(p + 1)));
}

// What the tests look at in one of build_response's replies: the question is
// not compressed, answers are A records, the additional section one OPT.
struct Decoded {
  uint16_t id = 0, flags = 0, qd = 0, an = 0, ns = 0, ar = 0;
  std::string qname_wire;
  uint16_t qtype = 0, qclass = 0;
  std::vector<std::string> a;
  std::vector<uint32_t> ttls;
  bool opt = false;
  uint16_t opt_size = 0;

  uint8_t rcode() const { return flags & 0xF; }
  bool qr() const { return flags & 0x8000; }
  bool aa() const { return flags & 0x0400; }
  bool tc() const { return flags & 0x0200; }
  bool rd() const { return flags & 0x0100; }
  bool ra() const { return flags & 0x0080; }
};

Decoded decode(const std::string& w) {
  Decoded d;
  d.id = u16(w, 0);
  d.flags = u16(w, 2);
  d.qd = u16(w, 4);
  d.an = u16(w, 6);
  d.ns = u16(w, 8);
  d.ar = u16(w, 10);
  size_t p = 12;
  if (d.qd == 1) {
    size_t start = p;
    while (w.at(p) != 0) p += 1 + static_cast<unsigned char>(w.at(p));
    ++p;
    d.qname_wire = w.substr(start, p - start);
    d.qtype = u16(w, p);
    d.qclass = u16(w, p + 2);
    p += 4;
  }
  for (int i = 0; i < d.an; ++i) {
    EXPECT_EQ(u16(w, p), 0xC00C) << "answer " << i << " is not named by a pointer to the question";
    EXPECT_EQ(u16(w, p + 2), kTypeA);
    EXPECT_EQ(u16(w, p + 4), kClassIn);
    d.ttls.push_back(static_cast<uint32_t>(u16(w, p + 6)) << 16 | u16(w, p + 8));
    EXPECT_EQ(u16(w, p + 10), 4);
    d.a.push_back(std::to_string(static_cast<unsigned char>(w.at(p + 12))) + "." +
                  std::to_string(static_cast<unsigned char>(w.at(p + 13))) + "." +
                  std::to_string(static_cast<unsigned char>(w.at(p + 14))) + "." +
                  std::to_string(static_cast<unsigned char>(w.at(p + 15))));
    p += 16;
  }
  if (d.ar == 1) {
    EXPECT_EQ(w.at(p), 0);
    EXPECT_EQ(u16(w, p + 1), kTypeOpt);
    d.opt = true;
    d.opt_size = u16(w, p + 3);
    p += 11;
  }
  EXPECT_EQ(p, w.size()) << "trailing bytes";
  return d;
}

// id 0xBEEF, RD, one question: www.Example.test A IN.
const std::string kQuery = bytes({0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                  3, 'w', 'w', 'w', 7, 'E', 'x', 'a', 'm', 'p', 'l', 'e', 4, 't', 'e', 's', 't', 0,
                                  0, 1, 0, 1});

// kQuery's header with the given question bytes after it.
std::string with_question(const std::string& question, int qdcount = 1) {
  return bytes({0x12, 0x34, 0x01, 0x00, 0, qdcount, 0, 0, 0, 0, 0, 0}) + question;
}

std::vector<std::string> many_addresses(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256));
  return out;
}

TEST(DnsMessage, RoundTripOfAHandBuiltQuery) {
  auto q = parse_query(kQuery);
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->id, 0xBEEF);
  EXPECT_TRUE(q->rd);
  EXPECT_EQ(q->q.name, "www.example.test");
  EXPECT_EQ(q->q.type, kTypeA);
  EXPECT_EQ(q->q.klass, kClassIn);
  EXPECT_FALSE(q->edns);
  EXPECT_EQ(q->edns_size, 0);
  EXPECT_EQ(q->wire_name, kQuery.substr(12, 18));
  EXPECT_EQ(udp_limit(*q), 512u);

  Answer a;
  a.a = {"10.0.0.1", "192.0.2.255"};
  a.ttl = 300;
  std::string got = build_response(*q, a, udp_limit(*q));
  std::string want = bytes({0xBE, 0xEF, 0x85, 0x80, 0, 1, 0, 2, 0, 0, 0, 0}) +  // QR AA RD RA, NOERROR
                     kQuery.substr(12) +                                       // the question, case kept
                     bytes({0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0x01, 0x2C, 0, 4, 10, 0, 0, 1,       //
                            0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0x01, 0x2C, 0, 4, 192, 0, 2, 255});
  EXPECT_EQ(str::hex(got), str::hex(want));

  // Not authoritative, no RD asked for.
  auto plain = *q;
  plain.rd = false;
  a.authoritative = false;
  auto d = decode(build_response(plain, a, 512));
  EXPECT_TRUE(d.qr());
  EXPECT_FALSE(d.aa());
  EXPECT_FALSE(d.rd());
  EXPECT_TRUE(d.ra());
  EXPECT_EQ(d.a, (std::vector<std::string>{"10.0.0.1", "192.0.2.255"}));
}

TEST(DnsMessage, EdnsIsNotedAndAnswered) {
  // kQuery plus an OPT record: root name, type 41, UDP size 4096, DO set.
  std::string wire = kQuery + bytes({0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0, 0, 0});
  wire[11] = 1;  // ARCOUNT
  auto q = parse_query(wire);
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_TRUE(q->edns);
  EXPECT_EQ(q->edns_size, 4096);
  EXPECT_EQ(udp_limit(*q), 1232u);
  Answer a;
  a.a = {"10.0.0.1"};
  std::string got = build_response(*q, a, udp_limit(*q));
  std::string want = bytes({0xBE, 0xEF, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 1}) + kQuery.substr(12) +
                     bytes({0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1,  // TTL 60
                            0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0});              // OPT, 1232, no DO
  EXPECT_EQ(str::hex(got), str::hex(want));

  // A small EDNS size still allows 512.
  wire[wire.size() - 8] = 0x01;  // 0x0100 = 256
  wire[wire.size() - 7] = 0x00;
  q = parse_query(wire);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->edns_size, 256);
  EXPECT_EQ(udp_limit(*q), 512u);

  // Two OPT records: FORMERR.
  std::string two = kQuery + bytes({0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0});
  two[11] = 2;
  ParseError why;
  EXPECT_FALSE(parse_query(two, &why).ok());
  EXPECT_TRUE(why.answerable());
  EXPECT_EQ(why.rcode, kFormErr);
}

TEST(DnsMessage, OtherRecordsAreSkippedAndBackwardPointersFollowed) {
  // An additional A record named by a pointer to the question, before the OPT.
  std::string wire = kQuery + bytes({0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4,  //
                                     0, 0, 41, 0x05, 0x00, 0, 0, 0, 0, 0, 0});
  wire[11] = 2;
  auto q = parse_query(wire);
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_TRUE(q->edns);
  EXPECT_EQ(q->edns_size, 1280);

  // A pointer forwards (from the question's second label to offset 20) is refused.
  std::string fwd = with_question(bytes({1, 'a', 0xC0, 20, 0, 1, 0, 1}));
  EXPECT_FALSE(parse_query(fwd).ok());
}

TEST(DnsMessage, CompressionPointerLoopsAreRefused) {
  // The question's name is a pointer to itself.
  ParseError why;
  auto self = parse_query(with_question(bytes({0xC0, 0x0C, 0, 1, 0, 1})), &why);
  ASSERT_FALSE(self.ok());
  EXPECT_EQ(self.error().code, "FormErr");
  EXPECT_TRUE(why.answerable());
  EXPECT_EQ(why.id, 0x1234);
  EXPECT_EQ(why.rcode, kFormErr);
  // A label, then a pointer back to that label: a loop through one label.
  EXPECT_FALSE(parse_query(with_question(bytes({1, 'a', 0xC0, 0x0C, 0, 1, 0, 1}))).ok());
  // Two names pointing at each other, in the additional section.
  std::string two = kQuery + bytes({0xC0, 36, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4});
  two[11] = 1;
  two[34] = static_cast<char>(0xC0);  // the record's name, at 34, points to 36 ...
  two[35] = 36;
  two[36] = static_cast<char>(0xC0);  // ... which points back to 34
  two[37] = 34;
  EXPECT_FALSE(parse_query(two).ok());
  // Into the header.
  EXPECT_FALSE(parse_query(with_question(bytes({0xC0, 0x02, 0, 1, 0, 1}))).ok());
}

TEST(DnsMessage, OutOfBoundsPointersAndTruncationAreRefused) {
  EXPECT_FALSE(parse_query(with_question(bytes({0xC0, 0xFF, 0, 1, 0, 1}))).ok());
  EXPECT_FALSE(parse_query(with_question(bytes({0xFF, 0xFF, 0, 1, 0, 1}))).ok());
  EXPECT_FALSE(parse_query(with_question(bytes({1, 'a', 0xC0}))).ok());  // half a pointer
  EXPECT_FALSE(parse_query(with_question(bytes({5, 'a', 'b'}))).ok());   // label past the end
  EXPECT_FALSE(parse_query(with_question(bytes({1, 'a', 0, 0, 1, 0}))).ok());  // short type/class
  EXPECT_FALSE(parse_query(with_question(bytes({1, 'a'}))).ok());        // no terminating zero
  // A record in the additional section whose data runs past the end.
  std::string rr = kQuery + bytes({0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 1, 0, 9, 1, 2});
  rr[11] = 1;
  EXPECT_FALSE(parse_query(rr).ok());
  // ARCOUNT says more records than there are.
  std::string counts = kQuery;
  counts[11] = 5;
  EXPECT_FALSE(parse_query(counts).ok());
}

TEST(DnsMessage, LabelAndNameLengthLimits) {
  std::string l63 = std::string(1, 63) + std::string(63, 'x');
  EXPECT_TRUE(parse_query(with_question(l63 + bytes({0, 0, 1, 0, 1}))).ok());
  std::string l64 = std::string(1, 64) + std::string(64, 'x');
  auto r = parse_query(with_question(l64 + bytes({0, 0, 1, 0, 1})));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("63"), std::string::npos) << r.error().message;
  // 0x80 labels (reserved) likewise.
  EXPECT_FALSE(parse_query(with_question(bytes({0x81, 'a', 0, 0, 1, 0, 1}))).ok());

  // 255 bytes on the wire: fine; 256 not.
  std::string n255 = l63 + l63 + l63 + std::string(1, 61) + std::string(61, 'y') + std::string(1, 0);
  ASSERT_EQ(n255.size(), 255u);
  auto ok = parse_query(with_question(n255 + bytes({0, 1, 0, 1})));
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->q.name.size(), 253u);
  std::string n256 = l63 + l63 + l63 + std::string(1, 62) + std::string(62, 'y') + std::string(1, 0);
  EXPECT_FALSE(parse_query(with_question(n256 + bytes({0, 1, 0, 1}))).ok());
  // Long names made of pointers are counted too.
  std::string viaptr = with_question(l63 + l63 + l63 + std::string(1, 0) + bytes({0, 1, 0, 1}));
  viaptr += std::string(1, 62) + std::string(62, 'z') + bytes({0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0});
  viaptr[11] = 1;
  EXPECT_FALSE(parse_query(viaptr).ok());
  std::string viaptr255 = with_question(l63 + l63 + l63 + std::string(1, 0) + bytes({0, 1, 0, 1}));
  viaptr255 += std::string(1, 61) + std::string(61, 'z') + bytes({0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0});
  viaptr255[11] = 1;
  EXPECT_TRUE(parse_query(viaptr255).ok());

  EXPECT_FALSE(encode_name(std::string(64, 'x') + ".test").ok());
  EXPECT_FALSE(encode_name("a..b").ok());
  EXPECT_FALSE(encode_name(std::string(63, 'x') + "." + std::string(63, 'x') + "." + std::string(63, 'x') + "." +
                           std::string(63, 'x'))
                   .ok());
}

TEST(DnsMessage, HeaderErrorsCarryTheId) {
  ParseError why;
  EXPECT_FALSE(parse_query("", &why).ok());
  EXPECT_FALSE(why.have_id);
  EXPECT_FALSE(why.answerable());
  EXPECT_FALSE(parse_query(kQuery.substr(0, 11), &why).ok());
  EXPECT_FALSE(why.answerable());

  // A response: never answered.
  std::string resp = kQuery;
  resp[2] = static_cast<char>(0x81);
  auto r = parse_query(resp, &why);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "NotAQuery");
  EXPECT_TRUE(why.have_id);
  EXPECT_TRUE(why.response);
  EXPECT_FALSE(why.answerable());

  // NOTIFY (opcode 4): NOTIMP, opcode and RD copied.
  std::string notify = kQuery;
  notify[2] = static_cast<char>(0x21);
  r = parse_query(notify, &why);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "NotImp");
  EXPECT_TRUE(why.answerable());
  EXPECT_EQ(why.rcode, kNotImp);
  EXPECT_EQ(str::hex(build_error(why)), str::hex(bytes({0xBE, 0xEF, 0xA1, 0x84, 0, 0, 0, 0, 0, 0, 0, 0})));

  // No question, or two: FORMERR.
  for (int qd : {0, 2}) {
    std::string w = kQuery;
    w[5] = static_cast<char>(qd);
    EXPECT_FALSE(parse_query(w, &why).ok());
    EXPECT_TRUE(why.answerable());
    EXPECT_EQ(why.rcode, kFormErr);
    EXPECT_EQ(why.id, 0xBEEF);
  }
  EXPECT_EQ(str::hex(build_error(0x0102, kServFail)), str::hex(bytes({1, 2, 0x80, 0x82, 0, 0, 0, 0, 0, 0, 0, 0})));
  EXPECT_EQ(str::hex(build_error(0x0102, kFormErr, 0, true)),
            str::hex(bytes({1, 2, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0})));
}

TEST(DnsMessage, TruncationSetsTc) {
  auto q = parse_query(kQuery);
  ASSERT_TRUE(q.ok());
  Answer a;
  a.a = many_addresses(100);
  std::string r = build_response(*q, a, udp_limit(*q));
  EXPECT_LE(r.size(), 512u);
  auto d = decode(r);
  EXPECT_TRUE(d.tc());
  EXPECT_EQ(d.an, (512 - 12 - 18 - 4) / 16);
  EXPECT_EQ(d.a.front(), "10.1.0.0");

  // Everything fits: no TC.
  a.a = many_addresses(29);
  d = decode(build_response(*q, a, 512));
  EXPECT_FALSE(d.tc());
  EXPECT_EQ(d.an, 29);
  a.a = many_addresses(30);
  d = decode(build_response(*q, a, 512));
  EXPECT_TRUE(d.tc());
  EXPECT_EQ(d.an, 29);

  // With EDNS the limit is its size, capped at 1232, and the OPT record stays.
  auto e = *q;
  e.edns = true;
  e.edns_size = 4096;
  a.a = many_addresses(100);
  r = build_response(e, a, udp_limit(e));
  EXPECT_LE(r.size(), 1232u);
  d = decode(r);
  EXPECT_TRUE(d.tc());
  EXPECT_TRUE(d.opt);
  EXPECT_EQ(d.opt_size, 1232);
  EXPECT_EQ(d.an, (1232 - 12 - 18 - 4 - 11) / 16);

  // TCP's limit takes them all.
  d = decode(build_response(*q, a, kMaxTcpSize));
  EXPECT_FALSE(d.tc());
  EXPECT_EQ(d.an, 100);
}

TEST(DnsMessage, NodataForAaaaAndOtherTypes) {
  Answer a;
  a.a = {"10.0.0.1"};
  for (uint16_t type : {kTypeAaaa, uint16_t{15} /* MX */, uint16_t{16} /* TXT */}) {
    std::string w = kQuery;
    w[w.size() - 3] = static_cast<char>(type);
    auto q = parse_query(w);
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(q->q.type, type);
    auto d = decode(build_response(*q, a, 512));
    EXPECT_EQ(d.rcode(), kNoError);
    EXPECT_TRUE(d.aa());
    EXPECT_EQ(d.an, 0);
    EXPECT_EQ(d.qtype, type);
  }
  // ANY gets the A records.
  std::string any = kQuery;
  any[any.size() - 3] = static_cast<char>(kTypeAny);
  auto q = parse_query(any);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(decode(build_response(*q, a, 512)).an, 1);
}

TEST(DnsMessage, NamesAreLowerCasedAndEscaped) {
  // "A.b" as one label, a space and a 0xFF byte in another, "\" in a third.
  auto q = parse_query(with_question(bytes({3, 'A', '.', 'b', 3, 'x', ' ', 0xFF, 2, '\\', 'Z', 0, 0, 1, 0, 1})));
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->q.name, "a\\.b.x\\032\\255.\\\\z");
  // Back to the wire (lower case): the same labels.
  auto enc = encode_name(q->q.name);
  ASSERT_TRUE(enc.ok()) << enc.error().message;
  EXPECT_EQ(str::hex(*enc), str::hex(bytes({3, 'a', '.', 'b', 3, 'x', ' ', 0xFF, 2, '\\', 'z', 0})));
  // The root.
  auto root = parse_query(with_question(bytes({0, 0, 2, 0, 1})));
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->q.name, "");
  EXPECT_EQ(root->q.type, kTypeNs);
  EXPECT_EQ(*encode_name(""), std::string(1, '\0'));
  EXPECT_EQ(*encode_name("."), std::string(1, '\0'));
  // A trailing dot is optional; an escaped one is part of the label.
  EXPECT_EQ(*encode_name("a.b."), *encode_name("a.b"));
  EXPECT_EQ(str::hex(*encode_name("a\\.")), str::hex(bytes({2, 'a', '.', 0})));
  EXPECT_EQ(str::hex(*encode_name("a\\\\.")), str::hex(bytes({2, 'a', '\\', 0})));
  EXPECT_FALSE(encode_name("a\\25").ok());
  EXPECT_FALSE(encode_name("a\\256").ok());
  EXPECT_FALSE(encode_name("a\\").ok());
}

TEST(DnsMessage, BuildQueryParsesBack) {
  auto w = build_query(7, Question{"Svc.Internal", kTypeAaaa, kClassIn}, true, 1232);
  ASSERT_TRUE(w.ok());
  auto q = parse_query(*w);
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->id, 7);
  EXPECT_TRUE(q->rd);
  EXPECT_EQ(q->q.name, "svc.internal");
  EXPECT_EQ(q->q.type, kTypeAaaa);
  EXPECT_TRUE(q->edns);
  EXPECT_EQ(q->edns_size, 1232);
  // A Query made in code (no wire name) is answered with its name encoded.
  Query made;
  made.id = 9;
  made.q = {"a.test", kTypeA, kClassIn};
  Answer a;
  a.a = {"10.0.0.9", "not an address", "::1"};
  auto d = decode(build_response(made, a, 512));
  EXPECT_EQ(d.id, 9);
  EXPECT_EQ(str::hex(d.qname_wire), str::hex(bytes({1, 'a', 4, 't', 'e', 's', 't', 0})));
  EXPECT_EQ(d.a, std::vector<std::string>{"10.0.0.9"});
  // NXDOMAIN and SERVFAIL carry no answers, whatever the addresses.
  a.rcode = kNxDomain;
  d = decode(build_response(made, a, 512));
  EXPECT_EQ(d.rcode(), kNxDomain);
  EXPECT_EQ(d.an, 0);
  EXPECT_EQ(d.qd, 1);
  a.rcode = kServFail;
  EXPECT_EQ(decode(build_response(made, a, 512)).rcode(), kServFail);
  made.q.name = "bad..name";
  d = decode(build_response(made, a, 512));
  EXPECT_EQ(d.rcode(), kServFail);
  EXPECT_EQ(d.qd, 0);
}

// Parses whatever it is given; whenever that works, the name re-encodes to
// the question's own bytes (lower-cased) and a response can be built.
int check_any(const std::string& w, std::mt19937& rng) {
  ParseError why;
  auto q = parse_query(w, &why);
  if (!q.ok()) {
    if (why.answerable()) {
      EXPECT_EQ(build_error(why).size(), 12u);
    }
    return 0;
  }
  std::string lowered = q->wire_name;
  for (char& c : lowered)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  auto enc = encode_name(q->q.name);
  EXPECT_TRUE(enc.ok()) << q->q.name;
  EXPECT_EQ(enc.ok() ? str::hex(*enc) : "", str::hex(lowered)) << q->q.name;
  Answer a;
  a.a = many_addresses(static_cast<int>(rng() % 40));
  size_t max = rng() % 2 ? udp_limit(*q) : kMaxTcpSize;
  EXPECT_LE(build_response(*q, a, max).size(), max);
  return 1;
}

TEST(DnsMessage, RandomBytesNeverCrash) {
  std::mt19937 rng(20240611);
  auto byte = [&] { return static_cast<char>(rng() & 0xFF); };
  // Pure noise.
  for (int i = 0; i < 3000; ++i) {
    std::string w(rng() % 200, '\0');
    for (char& c : w) c = byte();
    check_any(w, rng);
  }
  // Noise behind a plausible header (a query with one question), so the name
  // and record parsers see it; pointers and label bytes are made common.
  int parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string w = bytes({0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, static_cast<int>(rng() % 3)});
    size_t n = rng() % 120;
    for (size_t k = 0; k < n; ++k) {
      switch (rng() % 4) {
        case 0: w += static_cast<char>(0xC0); w += static_cast<char>(rng() % 64); break;
        case 1: w += static_cast<char>(rng() % 8); break;
        default: w += byte();
      }
    }
    parsed += check_any(w, rng);
  }
  // A valid query with EDNS, mutated and cut short.
  std::string base = kQuery + bytes({0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0});
  base[11] = 1;
  for (int i = 0; i < 3000; ++i) {
    std::string w = base;
    for (int k = 0, flips = 1 + static_cast<int>(rng() % 4); k < flips; ++k) w[rng() % w.size()] = byte();
    if (rng() % 3 == 0) w.resize(rng() % w.size());
    parsed += check_any(w, rng);
  }
  EXPECT_GT(parsed, 500) << "the noise should reach past the parser now and then";
}

// ---- The server ----

struct TempFile {
  explicit TempFile(const std::string& text) {
    char tmpl[] = "/tmp/pier-dns-XXXXXX";
    int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    ::close(fd);
    path = tmpl;
    std::ofstream(path) << text;
  }
  ~TempFile() { std::remove(path.c_str()); }
  std::string path;
};

// Runs one coroutine to completion on its own io_context.
template <class T>
T run(asio::awaitable<T> a) {
  asio::io_context ioc;
  std::optional<T> out;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> { out.emplace(co_await std::move(a)); },
                 [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
  ioc.run_for(20s);
  EXPECT_TRUE(out.has_value()) << "the coroutine did not finish";
  if (!out) return T(Error::internal("did not finish"));
  return std::move(*out);
}

std::string query_for(uint16_t id, const std::string& name, uint16_t type = kTypeA, uint16_t edns = 0) {
  auto w = build_query(id, Question{name, type, kClassIn}, true, edns);
  EXPECT_TRUE(w.ok());
  return w.ok() ? *w : std::string();
}

// One UDP exchange from a fresh socket; nothing when no answer came in time.
std::optional<std::string> udp_ask(uint16_t port, const std::string& wire, std::chrono::milliseconds wait = 3000ms) {
  asio::io_context ioc;
  udp::socket s(ioc, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  s.send_to(asio::buffer(wire), udp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  std::array<char, 65536> buf;
  std::optional<std::string> out;
  s.async_receive(asio::buffer(buf), [&](boost::system::error_code ec, size_t n) {
    if (!ec) out.emplace(buf.data(), n);
  });
  ioc.run_for(wait);
  return out;
}

// A TCP client speaking RFC 7766 framing, with timeouts.
class TcpClient {
 public:
  explicit TcpClient(uint16_t port) : sock_(ioc_) {
    boost::system::error_code ec;
    sock_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    connected = !ec;
  }
  void send(const std::vector<std::string>& msgs) {
    std::string all;
    for (const auto& m : msgs) {
      all += static_cast<char>(m.size() >> 8);
      all += static_cast<char>(m.size() & 0xFF);
      all += m;
    }
    boost::system::error_code ec;
    asio::write(sock_, asio::buffer(all), ec);
  }
  void send(const std::string& m) { send(std::vector<std::string>{m}); }
  // The next message; nothing on EOF or timeout (eof tells which).
  std::optional<std::string> recv(std::chrono::milliseconds wait = 3000ms) {
    std::optional<std::string> out;
    eof = false;
    asio::co_spawn(ioc_, [&]() -> asio::awaitable<void> {
      auto tuple = asio::as_tuple(asio::use_awaitable);
      std::array<unsigned char, 2> len{};
      auto [ec, n] = co_await asio::async_read(sock_, asio::buffer(len), tuple);
      if (ec) {
        eof = ec == asio::error::eof || ec == asio::error::connection_reset;
        co_return;
      }
      std::string m(static_cast<size_t>(len[0] << 8 | len[1]), '\0');
      auto [ec2, n2] = co_await asio::async_read(sock_, asio::buffer(m), tuple);
      if (ec2) {
        eof = true;
        co_return;
      }
      out = std::move(m);
    }, asio::detached);
    ioc_.restart();
    ioc_.run_for(wait);
    if (!ioc_.stopped()) {  // timed out: cancel the read and let it finish
      sock_.cancel();
      ioc_.restart();
      ioc_.run();
    }
    return out;
  }

  bool connected = false;
  bool eof = false;

 private:
  asio::io_context ioc_;
  tcp::socket sock_;
};

class DnsServer : public ::testing::Test {
 protected:
  void start(Server::Options options = {}) {
    auto s = Server::bind(ioc_, "127.0.0.1", 0, lookup_fn(), options);
    ASSERT_TRUE(s.ok()) << s.error().message;
    server = std::move(s).value();
    EXPECT_NE(server->udp_port(), 0);
    EXPECT_EQ(server->udp_port(), server->tcp_port());
    run_in_background();
  }
  void run_in_background() {
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    if (server) server->close();
    work_.reset();
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
    server.reset();
  }

  Server::Lookup lookup_fn() {
    return [this](const Question& q, const std::string& client) {
      std::lock_guard lock(mu_);
      asked_.push_back(q.name + "/" + std::to_string(q.type));
      clients_.push_back(client);
      Answer a;
      if (q.name == "www.example.test") {
        a.a = {"10.0.0.5"};
      } else if (q.name == "many.example.test") {
        a.a = many_addresses(40);
      } else if (q.name == "empty.example.test") {
        // exists, no addresses
      } else if (q.name == "boom.example.test") {
        throw std::runtime_error("the database is on fire");
      } else if (q.name == "close.example.test") {
        server->close();  // from inside the Lookup, on the server's strand
        a.a = {"10.0.0.6"};
      } else {
        a.rcode = kNxDomain;
      }
      return a;
    };
  }
  std::vector<std::string> asked() {
    std::lock_guard lock(mu_);
    return asked_;
  }
  size_t count_asked(const std::string& what) {
    auto a = asked();
    return static_cast<size_t>(std::count(a.begin(), a.end(), what));
  }
  std::vector<std::string> clients() {
    std::lock_guard lock(mu_);
    return clients_;
  }
  uint16_t port() const { return server->udp_port(); }
  // Waits (a little) for the server's TCP connection count to reach n.
  bool connections_become(size_t n) {
    for (int i = 0; i < 300 && server->tcp_connections() != n; ++i) std::this_thread::sleep_for(10ms);
    return server->tcp_connections() == n;
  }

  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(ioc_);
  std::thread thread_;
  std::unique_ptr<Server> server;
  std::mutex mu_;
  std::vector<std::string> asked_, clients_;
};

TEST_F(DnsServer, AnswersOverUdp) {
  start();
  auto r = udp_ask(port(), query_for(0x4242, "WWW.Example.Test"));
  ASSERT_TRUE(r.has_value());
  auto d = decode(*r);
  EXPECT_EQ(d.id, 0x4242);
  EXPECT_TRUE(d.qr());
  EXPECT_TRUE(d.aa());
  EXPECT_TRUE(d.rd());
  EXPECT_EQ(d.rcode(), kNoError);
  EXPECT_EQ(d.qname_wire, encode_name("WWW.Example.Test").value());  // case kept
  EXPECT_EQ(d.a, std::vector<std::string>{"10.0.0.5"});
  EXPECT_EQ(d.ttls, std::vector<uint32_t>{60});
  EXPECT_EQ(asked(), std::vector<std::string>{"www.example.test/1"});
  EXPECT_EQ(clients(), std::vector<std::string>{"127.0.0.1"});

  d = decode(*udp_ask(port(), query_for(2, "nothere.example.test")));
  EXPECT_EQ(d.rcode(), kNxDomain);
  EXPECT_EQ(d.an, 0);
  d = decode(*udp_ask(port(), query_for(3, "www.example.test", kTypeAaaa)));
  EXPECT_EQ(d.rcode(), kNoError);
  EXPECT_EQ(d.an, 0);

  // Too many for 512 bytes: TC; with EDNS all 40 fit in 1232.
  d = decode(*udp_ask(port(), query_for(4, "many.example.test")));
  EXPECT_TRUE(d.tc());
  EXPECT_EQ(d.an, 29);
  EXPECT_FALSE(d.opt);
  d = decode(*udp_ask(port(), query_for(5, "many.example.test", kTypeA, 4096)));
  EXPECT_FALSE(d.tc());
  EXPECT_EQ(d.an, 40);
  EXPECT_TRUE(d.opt);
  EXPECT_EQ(d.opt_size, 1232);
}

TEST_F(DnsServer, MalformedPacketsGetFormerrOrAreDropped) {
  start();
  // A readable header, a broken question: FORMERR with the id.
  auto r = udp_ask(port(), bytes({0xAB, 0xCD, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 0x0C, 0, 1, 0, 1}));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(str::hex(*r), str::hex(bytes({0xAB, 0xCD, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0})));
  // An UPDATE: NOTIMP.
  std::string update = query_for(0x0102, "www.example.test");
  update[2] = static_cast<char>(0x28);
  r = udp_ask(port(), update);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(decode(*r).rcode(), kNotImp);
  // No header, or a response: nothing comes back.
  EXPECT_FALSE(udp_ask(port(), "hello", 300ms).has_value());
  std::string response = query_for(7, "www.example.test");
  response[2] = static_cast<char>(0x81);
  EXPECT_FALSE(udp_ask(port(), response, 300ms).has_value());
  // Another class: REFUSED, without asking the Lookup.
  auto chaos = build_query(8, Question{"version.bind", 16, 3});
  r = udp_ask(port(), *chaos);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(decode(*r).rcode(), kRefused);
  EXPECT_TRUE(asked().empty());
  // A Lookup that throws: SERVFAIL, question echoed.
  r = udp_ask(port(), query_for(9, "boom.example.test"));
  ASSERT_TRUE(r.has_value());
  auto d = decode(*r);
  EXPECT_EQ(d.rcode(), kServFail);
  EXPECT_EQ(d.qd, 1);
  // And the server still answers.
  r = udp_ask(port(), query_for(10, "www.example.test"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(decode(*r).a, std::vector<std::string>{"10.0.0.5"});
}

TEST_F(DnsServer, AnswersOverTcpSeveralQueriesPerConnection) {
  start();
  TcpClient c(port());
  ASSERT_TRUE(c.connected);
  // Three at once (pipelined), answered in order.
  c.send({query_for(1, "www.example.test"), query_for(2, "www.example.test", kTypeAaaa),
          query_for(3, "nope.example.test")});
  auto a1 = c.recv(), a2 = c.recv(), a3 = c.recv();
  ASSERT_TRUE(a1 && a2 && a3);
  EXPECT_EQ(decode(*a1).id, 1);
  EXPECT_EQ(decode(*a1).a, std::vector<std::string>{"10.0.0.5"});
  EXPECT_EQ(decode(*a2).id, 2);
  EXPECT_EQ(decode(*a2).an, 0);
  EXPECT_EQ(decode(*a2).rcode(), kNoError);
  EXPECT_EQ(decode(*a3).id, 3);
  EXPECT_EQ(decode(*a3).rcode(), kNxDomain);
  // Over TCP nothing is truncated.
  c.send(query_for(4, "many.example.test"));
  auto many = c.recv();
  ASSERT_TRUE(many);
  EXPECT_FALSE(decode(*many).tc());
  EXPECT_EQ(decode(*many).an, 40);
  // Garbage with an id: FORMERR; a message too short for an id: ignored; the
  // connection goes on.
  c.send({bytes({0x0F, 0x0F, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0}), std::string(), query_for(5, "www.example.test")});
  auto bad = c.recv();
  ASSERT_TRUE(bad);
  EXPECT_EQ(decode(*bad).id, 0x0F0F);
  EXPECT_EQ(decode(*bad).rcode(), kFormErr);
  auto good = c.recv();
  ASSERT_TRUE(good);
  EXPECT_EQ(decode(*good).id, 5);
  EXPECT_EQ(server->tcp_connections(), 1u);
}

TEST_F(DnsServer, RealClientResolvesNxdomainAndFallsBackToTcp) {
  start();
  TempFile empty_conf("");
  client::ResolverOptions opts;
  opts.servers = "127.0.0.1:" + std::to_string(port());
  opts.resolv_conf = empty_conf.path;
  opts.hosts_file = "";
  opts.timeout = 5000ms;

  auto r = run(client::resolve("www.example.test", 443, opts));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ(r->front().address().to_string(), "10.0.0.5");
  EXPECT_EQ(r->front().port(), 443);
  EXPECT_GE(count_asked("www.example.test/1"), 1u);
  EXPECT_GE(count_asked("www.example.test/28"), 1u);  // NODATA for AAAA: not an error

  auto nx = run(client::resolve("missing.example.test", 443, opts));
  ASSERT_FALSE(nx.ok());
  EXPECT_EQ(nx.error().kind, ErrorKind::kNotFound);
  EXPECT_NE(nx.error().message.find("NXDOMAIN"), std::string::npos) << nx.error().message;

  auto none = run(client::resolve("empty.example.test", 443, opts));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().kind, ErrorKind::kNotFound);

  // 40 addresses do not fit in 512 bytes: c-ares gets TC over UDP and asks
  // again over TCP (same port), where all of them come back.
  auto many = run(client::resolve("many.example.test", 80, opts));
  ASSERT_TRUE(many.ok()) << many.error().message;
  EXPECT_EQ(many->size(), 40u);
  EXPECT_GE(count_asked("many.example.test/1"), 2u);  // once over UDP, once over TCP
}

TEST_F(DnsServer, TcpIdleConnectionsAreClosed) {
  Server::Options o;
  o.tcp_idle_timeout = 200ms;
  start(o);
  TcpClient c(port());
  ASSERT_TRUE(c.connected);
  c.send(query_for(1, "www.example.test"));
  ASSERT_TRUE(c.recv());
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(c.recv(3000ms));
  EXPECT_TRUE(c.eof);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 2000ms);
  EXPECT_TRUE(connections_become(0));
}

TEST_F(DnsServer, TcpConnectionsAreLimited) {
  Server::Options o;
  o.max_tcp_connections = 2;
  start(o);
  auto one = std::make_unique<TcpClient>(port());
  TcpClient two(port());
  for (TcpClient* c : {one.get(), &two}) {
    c->send(query_for(1, "www.example.test"));
    ASSERT_TRUE(c->recv());
  }
  EXPECT_EQ(server->tcp_connections(), 2u);
  TcpClient three(port());
  three.send(query_for(3, "www.example.test"));
  EXPECT_FALSE(three.recv());
  EXPECT_TRUE(three.eof);
  // A place frees up.
  one.reset();
  ASSERT_TRUE(connections_become(1));
  TcpClient four(port());
  four.send(query_for(4, "www.example.test"));
  auto r = four.recv();
  ASSERT_TRUE(r);
  EXPECT_EQ(decode(*r).id, 4);
  two.send(query_for(2, "www.example.test"));
  EXPECT_TRUE(two.recv());
}

TEST_F(DnsServer, AdoptsOpenSockets) {
  auto addr = asio::ip::make_address("127.0.0.1");
  asio::io_context scratch;
  udp::socket u(scratch, udp::endpoint(addr, 0));
  tcp::acceptor a(scratch, tcp::endpoint(addr, 0));
  uint16_t uport = u.local_endpoint().port(), tport = a.local_endpoint().port();
  auto s = Server::adopt(ioc_, u.release(), a.release(), lookup_fn());
  ASSERT_TRUE(s.ok()) << s.error().message;
  server = std::move(s).value();
  EXPECT_EQ(server->udp_port(), uport);
  EXPECT_EQ(server->tcp_port(), tport);
  run_in_background();

  auto r = udp_ask(uport, query_for(1, "www.example.test"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(decode(*r).a, std::vector<std::string>{"10.0.0.5"});
  TcpClient c(tport);
  c.send(query_for(2, "nope.example.test"));
  auto t = c.recv();
  ASSERT_TRUE(t);
  EXPECT_EQ(decode(*t).rcode(), kNxDomain);
}

TEST_F(DnsServer, AdoptRefusesTheWrongSocketsAndClosesThem) {
  auto addr = asio::ip::make_address("127.0.0.1");
  asio::io_context scratch;
  auto closed = [](int fd) { return fcntl(fd, F_GETFD) == -1 && errno == EBADF; };
  {
    udp::socket u(scratch, udp::endpoint(addr, 0));
    tcp::acceptor a(scratch, tcp::endpoint(addr, 0));
    int ufd = u.release(), tfd = a.release();
    auto s = Server::adopt(ioc_, tfd, ufd, lookup_fn());  // swapped
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, "InvalidSocket");
    EXPECT_TRUE(closed(ufd));
    EXPECT_TRUE(closed(tfd));
  }
  {
    udp::socket u(scratch, udp::endpoint(addr, 0));
    tcp::socket t(scratch);
    t.open(tcp::v4());  // not listening
    int ufd = u.release(), tfd = t.release();
    auto s = Server::adopt(ioc_, ufd, tfd, lookup_fn());
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("listening"), std::string::npos) << s.error().message;
    EXPECT_TRUE(closed(ufd));
    EXPECT_TRUE(closed(tfd));
  }
  EXPECT_FALSE(Server::adopt(ioc_, -1, -1, lookup_fn()).ok());
  EXPECT_FALSE(Server::bind(ioc_, "not-an-address", 0, lookup_fn()).ok());
}

TEST_F(DnsServer, CloseStopsServing) {
  start();
  ASSERT_TRUE(udp_ask(port(), query_for(1, "www.example.test")));
  TcpClient idle(port());
  ASSERT_TRUE(idle.connected);
  ASSERT_TRUE(connections_become(1));
  uint16_t p = port();
  server->close();  // from this thread, while the context runs on another
  server->close();
  EXPECT_TRUE(connections_become(0));
  size_t before = asked().size();
  EXPECT_FALSE(udp_ask(p, query_for(2, "www.example.test"), 300ms));
  EXPECT_FALSE(idle.recv(1000ms));
  EXPECT_TRUE(idle.eof);
  TcpClient late(p);
  EXPECT_FALSE(late.connected);
  EXPECT_EQ(asked().size(), before);
  server.reset();  // the destructor closes again: harmless
}

TEST_F(DnsServer, CloseFromInsideTheLookup) {
  start();
  EXPECT_FALSE(udp_ask(port(), query_for(1, "close.example.test"), 500ms));  // closed before the reply
  EXPECT_FALSE(udp_ask(port(), query_for(2, "www.example.test"), 300ms));
  EXPECT_EQ(asked(), std::vector<std::string>{"close.example.test/1"});
}

TEST_F(DnsServer, DestroyedWithTheContextStopped) {
  // Made and dropped without the context ever running: nothing leaks or hangs.
  auto s = Server::bind(ioc_, "127.0.0.1", 0, lookup_fn());
  ASSERT_TRUE(s.ok());
  s->reset();
  ioc_.poll();
}

}  // namespace
}  // namespace pier::dns

#include "exec/message.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/strings.h"
#include "exec/payloads.h"

namespace pier::exec {
namespace {

namespace json = boost::json;

// The vectors live in the steering repo's shared/docs beside the clone.
const json::object& vectors() {
  static json::object v = [] {
    std::filesystem::path p = std::getenv("PIER_SSM_VECTORS")
                                  ? std::getenv("PIER_SSM_VECTORS")
                                  : std::filesystem::path(PIER_SOURCE_DIR) / ".." / "shared" / "docs" /
                                        "ssm-test-vectors.json";
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    boost::system::error_code ec;
    auto val = json::parse(ss.str(), ec);
    return ec || !val.is_object() ? json::object() : val.as_object();
  }();
  return v;
}

std::string unhex(std::string_view h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

std::string s(const json::value& v) { return std::string(v.as_string()); }
int64_t n(const json::value& v) { return v.is_int64() ? v.as_int64() : static_cast<int64_t>(v.as_uint64()); }

void expect_fields(const Message& m, const json::object& f) {
  EXPECT_EQ(m.header_length, n(f.at("HeaderLength")));
  EXPECT_EQ(m.type, s(f.at("MessageType")));
  EXPECT_EQ(m.schema_version, n(f.at("SchemaVersion")));
  EXPECT_EQ(static_cast<int64_t>(m.created_ms), n(f.at("CreatedDate")));
  EXPECT_EQ(m.sequence, n(f.at("SequenceNumber")));
  EXPECT_EQ(static_cast<int64_t>(m.flags), n(f.at("Flags")));
  EXPECT_EQ(m.id.str(), s(f.at("MessageId")));
  EXPECT_EQ(static_cast<int64_t>(m.payload_type), n(f.at("PayloadType")));
  EXPECT_EQ(m.payload_length, n(f.at("PayloadLength")));
}

TEST(SsmVectors, ArePresent) {
  ASSERT_TRUE(vectors().contains("binary_frames")) << "ssm-test-vectors.json not found";
  EXPECT_GE(vectors().at("binary_frames").as_array().size(), 10u);
}

TEST(SsmFrame, EveryVectorParsesAndSerializesByteForByte) {
  for (const auto& fv : vectors().at("binary_frames").as_array()) {
    const auto& f = fv.as_object();
    SCOPED_TRACE(s(f.at("name")));
    std::string frame = unhex(s(f.at("frame_hex")));
    ASSERT_EQ(frame.size(), static_cast<size_t>(n(f.at("frame_length"))));
    auto m = parse(frame);
    ASSERT_TRUE(m.ok()) << m.error().message;
    const auto& fields = f.at("fields").as_object();
    expect_fields(*m, fields);
    EXPECT_EQ(str::hex(m->payload), s(f.at("payload_hex")));
    EXPECT_TRUE(validate(*m, Receiver::kClient).ok());
    EXPECT_TRUE(validate(*m, Receiver::kAgent).ok());

    // Build the same message from its fields and compare bytes.
    Message b;
    b.type = s(fields.at("MessageType"));
    b.schema_version = static_cast<uint32_t>(n(fields.at("SchemaVersion")));
    b.created_ms = static_cast<uint64_t>(n(fields.at("CreatedDate")));
    b.sequence = n(fields.at("SequenceNumber"));
    b.flags = static_cast<uint64_t>(n(fields.at("Flags")));
    b.id = *Uuid::parse(s(fields.at("MessageId")));
    b.payload_type = static_cast<PayloadType>(n(fields.at("PayloadType")));
    b.payload = unhex(s(f.at("payload_hex")));
    auto out = serialize(b);
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(str::hex(*out), s(f.at("frame_hex")));
  }
}

TEST(SsmFrame, ParserEdgeCasesMatchTheRealParser) {
  for (const auto& fv : vectors().at("parser_edge_cases").as_array()) {
    const auto& f = fv.as_object();
    SCOPED_TRACE(s(f.at("name")));
    auto m = parse(unhex(s(f.at("frame_hex"))));
    ASSERT_TRUE(m.ok()) << m.error().message;
    const auto& want = f.at("decoded_by_real_parser").as_object();
    expect_fields(*m, want);
    EXPECT_EQ(str::hex(m->payload), s(want.at("PayloadHex")));
    auto v = validate(*m, Receiver::kClient);
    if (s(want.at("Validate")) == "ok") {
      EXPECT_TRUE(v.ok()) << v.error().message;
    } else {
      ASSERT_FALSE(v.ok());
      EXPECT_EQ(v.error().message, s(want.at("Validate")));
    }
  }
}

TEST(SsmFrame, RefusesWhatWouldCrashTheRealParsers) {
  EXPECT_FALSE(parse(std::string(119, '\0')).ok());
  std::string frame = *serialize(make_message(message_type::kInputStreamData, 0, 0, PayloadType::kOutput, "x"));
  frame[0] = '\x7f';  // HeaderLength far beyond the frame
  EXPECT_FALSE(parse(frame).ok());
  Message m;
  m.type = std::string(33, 'a');
  EXPECT_FALSE(serialize(m).ok());
}

TEST(SsmFrame, AgentDoesNotCheckTheDigest) {
  std::string frame = *serialize(make_message(message_type::kInputStreamData, 0, 0, PayloadType::kOutput, "abc"));
  frame.back() = 'x';
  auto m = parse(frame);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(validate(*m, Receiver::kClient).ok());
  EXPECT_TRUE(validate(*m, Receiver::kAgent).ok());
}

TEST(SsmFrame, UuidHalvesAreSwappedOnTheWire) {
  const auto& about = vectors().at("about").as_object().at("uuid_byte_order_example").as_object();
  Message m = make_message(message_type::kAcknowledge, 0, 3, PayloadType::kNone, "{}");
  m.id = *Uuid::parse(s(about.at("uuid")));
  std::string f = *serialize(m);
  EXPECT_EQ(str::hex(f.substr(64, 16)), s(about.at("wire_hex")));
}

const json::object& frame_named(std::string_view name) {
  for (const auto& fv : vectors().at("binary_frames").as_array())
    if (fv.as_object().at("name").as_string() == name) return fv.as_object();
  static json::object none;
  return none;
}

std::string payload_of(std::string_view name) { return unhex(s(frame_named(name).at("payload_hex"))); }

TEST(SsmPayloads, WritersMatchTheGoPeersExactly) {
  auto ack = parse_acknowledge(payload_of("acknowledge"));
  ASSERT_TRUE(ack.ok());
  EXPECT_EQ(ack->message_id, "6ba7b814-9dad-41d1-80b4-00c04fd430c8");
  EXPECT_EQ(to_json(*ack), payload_of("acknowledge"));

  auto hreq = parse_handshake_request(payload_of("handshake_request"));
  ASSERT_TRUE(hreq.ok());
  ASSERT_EQ(hreq->actions.size(), 1u);
  EXPECT_EQ(hreq->actions[0].action_type, "SessionType");
  EXPECT_EQ(to_json(*hreq), payload_of("handshake_request"));

  auto hres = parse_handshake_response(payload_of("handshake_response"));
  ASSERT_TRUE(hres.ok());
  EXPECT_EQ(to_json(*hres), payload_of("handshake_response"));

  auto hc = parse_handshake_complete(payload_of("handshake_complete"));
  ASSERT_TRUE(hc.ok());
  EXPECT_EQ(hc->time_to_complete_ns, 1234567890);
  EXPECT_EQ(to_json(*hc), payload_of("handshake_complete"));

  auto size = parse_size(payload_of("size"));
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(size->cols, 80u);
  EXPECT_EQ(to_json(*size), payload_of("size"));

  auto cc = parse_channel_closed(payload_of("channel_closed"));
  ASSERT_TRUE(cc.ok());
  EXPECT_EQ(to_json(*cc), payload_of("channel_closed"));

  EXPECT_EQ(str::hex(flag_payload(PayloadFlag::kTerminateSession)), "00000002");
  EXPECT_EQ(parse_flag(payload_of("flag_terminate_session")), PayloadFlag::kTerminateSession);
}

TEST(SsmPayloads, ReadersMatchKeysCaseInsensitively) {
  auto a = parse_acknowledge(R"({"acknowledgedmessagetype":"x","ACKNOWLEDGEDMESSAGESEQUENCENUMBER":7,"extra":1})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->message_type, "x");
  EXPECT_EQ(a->sequence, 7);
  EXPECT_FALSE(parse_handshake_complete(R"({"HandshakeTimeToComplete":1.5})").ok());
}

TEST(SsmTextFrames, OpenChannelFramesMatchTheVectors) {
  const auto& t = vectors().at("text_frames").as_object();
  std::string client = s(t.at("client_open_data_channel").as_object().at("json"));
  auto c = parse_open_channel(client);
  ASSERT_TRUE(c.ok());
  ClientOpenDataChannel co{"1.0", c->request_id, c->token_value, c->client_id, c->client_version};
  EXPECT_EQ(to_json(co), client);

  std::string agent = s(t.at("agent_open_data_channel").as_object().at("json"));
  auto a = parse_open_channel(agent);
  ASSERT_TRUE(a.ok());
  AgentOpenDataChannel ao{"1.0", a->request_id, a->token_value, a->client_instance_id, a->client_id};
  EXPECT_EQ(to_json(ao), agent);

  std::string control = s(t.at("agent_open_control_channel").as_object().at("json"));
  auto k = parse_open_channel(control);
  ASSERT_TRUE(k.ok());
  AgentOpenControlChannel ko{"1.0", k->request_id, k->token_value, k->agent_version, "linux"};
  EXPECT_EQ(to_json(ko), control);
}

TEST(SsmPayloads, GoEscaping) {
  EXPECT_EQ(go_quote("a<b>&\"\\\n\x01"), R"("a\u003cb\u003e\u0026\"\\\n\u0001")");
}

}  // namespace
}  // namespace pier::exec

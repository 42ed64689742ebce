#include "exec/payloads.h"

#include <boost/json.hpp>
#include <fmt/format.h>

#include "common/strings.h"

namespace pier::exec {

namespace json = boost::json;

std::string go_quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '<': case '>': case '&':
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 15];
        continue;
      default: break;
    }
    if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else if (c == 0xe2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(s[i + 2]) == 0xa8 ||
                static_cast<unsigned char>(s[i + 2]) == 0xa9)) {
      out += static_cast<unsigned char>(s[i + 2]) == 0xa8 ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

namespace {

Error bad(std::string_view what) {
  return Error::invalid("MalformedPayload", fmt::format("cannot decode {}", what));
}

Result<json::object> object_of(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return bad(what);
  return std::move(v.as_object());
}

// Go's encoding/json: an exact key match first, else a case-insensitive one.
const json::value* field(const json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key)) return v;
  for (const auto& [k, v] : o)
    if (str::iequals(k, key)) return &v;
  return nullptr;
}

std::string str_field(const json::object& o, std::string_view key) {
  const auto* v = field(o, key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

int64_t int_field(const json::object& o, std::string_view key) {
  const auto* v = field(o, key);
  if (!v) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  return 0;
}

bool bool_field(const json::object& o, std::string_view key) {
  const auto* v = field(o, key);
  return v && v->is_bool() && v->as_bool();
}

std::string raw(const json::value* v) { return v ? json::serialize(*v) : "null"; }

}  // namespace

std::string to_json(const Acknowledge& a) {
  return fmt::format(
      "{{\"AcknowledgedMessageType\":{},\"AcknowledgedMessageId\":{},"
      "\"AcknowledgedMessageSequenceNumber\":{},\"IsSequentialMessage\":{}}}",
      go_quote(a.message_type), go_quote(a.message_id), a.sequence,
      a.is_sequential ? "true" : "false");
}

Result<Acknowledge> parse_acknowledge(std::string_view text) {
  PIER_ASSIGN(auto o, object_of(text, "acknowledge"));
  Acknowledge a;
  a.message_type = str_field(o, "AcknowledgedMessageType");
  a.message_id = str_field(o, "AcknowledgedMessageId");
  a.sequence = int_field(o, "AcknowledgedMessageSequenceNumber");
  a.is_sequential = bool_field(o, "IsSequentialMessage");
  return a;
}

Message make_ack(const Message& m) {
  Acknowledge a{m.type, m.id.str(), m.sequence, true};
  return make_message(message_type::kAcknowledge, 0, kFlagSyn | kFlagFin, PayloadType::kNone,
                      to_json(a));
}

std::string to_json(const ChannelClosed& c) {
  return fmt::format(
      "{{\"MessageId\":{},\"CreatedDate\":{},\"DestinationId\":{},\"SessionId\":{},"
      "\"MessageType\":{},\"SchemaVersion\":{},\"Output\":{}}}",
      go_quote(c.message_id), go_quote(c.created_date), go_quote(c.destination_id),
      go_quote(c.session_id), go_quote(c.message_type), c.schema_version, go_quote(c.output));
}

Result<ChannelClosed> parse_channel_closed(std::string_view text) {
  PIER_ASSIGN(auto o, object_of(text, "channel_closed"));
  ChannelClosed c;
  c.message_id = str_field(o, "MessageId");
  c.created_date = str_field(o, "CreatedDate");
  c.destination_id = str_field(o, "DestinationId");
  c.session_id = str_field(o, "SessionId");
  c.message_type = str_field(o, "MessageType");
  c.schema_version = int_field(o, "SchemaVersion");
  c.output = str_field(o, "Output");
  return c;
}

std::string to_json(const TerminalSize& s) {
  return fmt::format("{{\"cols\":{},\"rows\":{}}}", s.cols, s.rows);
}

Result<TerminalSize> parse_size(std::string_view text) {
  PIER_ASSIGN(auto o, object_of(text, "size"));
  TerminalSize s;
  int64_t c = int_field(o, "cols"), r = int_field(o, "rows");
  if (c < 0 || r < 0 || c > 0xffffffffLL || r > 0xffffffffLL) return bad("size");
  s.cols = static_cast<uint32_t>(c);
  s.rows = static_cast<uint32_t>(r);
  return s;
}

std::string to_json(const HandshakeRequest& h) {
  std::string actions;
  if (h.actions.empty()) {
    actions = "null";
  } else {
    actions = "[";
    for (size_t i = 0; i < h.actions.size(); ++i) {
      if (i) actions += ',';
      actions += fmt::format("{{\"ActionType\":{},\"ActionParameters\":{}}}",
                             go_quote(h.actions[i].action_type),
                             h.actions[i].parameters_json.empty() ? "null" : h.actions[i].parameters_json);
    }
    actions += "]";
  }
  return fmt::format("{{\"AgentVersion\":{},\"RequestedClientActions\":{}}}",
                     go_quote(h.agent_version), actions);
}

Result<HandshakeRequest> parse_handshake_request(std::string_view text) {
  PIER_ASSIGN(auto o, object_of(text, "handshake request"));
  HandshakeRequest h;
  h.agent_version = str_field(o, "AgentVersion");
  if (const auto* a = field(o, "RequestedClientActions"); a && a->is_array()) {
    for (const auto& e : a->as_array()) {
      if (!e.is_object()) return bad("handshake request");
      ClientAction ca;
      ca.action_type = str_field(e.as_object(), "ActionType");
      ca.parameters_json = raw(field(e.as_object(), "ActionParameters"));
      h.actions.push_back(std::move(ca));
    }
  }
  return h;
}

std::string to_json(const HandshakeResponse& h) {
  std::string actions = "[";
  for (size_t i = 0; i < h.actions.size(); ++i) {
    const auto& a = h.actions[i];
    if (i) actions += ',';
    actions += fmt::format("{{\"ActionType\":{},\"ActionStatus\":{},\"ActionResult\":{},\"Error\":{}}}",
                           go_quote(a.action_type), a.action_status,
                           a.action_result_json.empty() ? "null" : a.action_result_json,
                           go_quote(a.error));
  }
  actions += "]";
  std::string errors = "null";
  if (!h.errors.empty()) {
    errors = "[";
    for (size_t i = 0; i < h.errors.size(); ++i) errors += (i ? "," : "") + go_quote(h.errors[i]);
    errors += "]";
  }
  return fmt::format("{{\"ClientVersion\":{},\"ProcessedClientActions\":{},\"Errors\":{}}}",
                     go_quote(h.client_version), actions, errors);
}

Result<HandshakeResponse> parse_handshake_response(std::string_view text) {
  PIER_ASSIGN(auto o, object_of(text, "handshake response"));
  HandshakeResponse h;
  h.client_version = str_field(o, "ClientVersion");
  if (const auto* a = field(o, "ProcessedClientActions"); a && a->is_array()) {
    for (const auto& e : a->as_array()) {
      if (!e.is_object()) return bad("handshake response");
      ProcessedAction pa;
      pa.action_type = str_field(e.as_object(), "ActionType");
      pa.action_status = static_cast<int>(int_field(e.as_object(), "ActionStatus"));
      pa.action_result_json = raw(field(e.as_object(), "ActionResult"));
      pa.error = str_field(e.as_object(), "Error");
      h.actions.push_back(std::move(pa));
    }
  }
  if (const auto* e = field(o, "Errors"); e && e->is_array())
    for (const auto& s : e->as_array())
      if (s.is_string()) h.errors.emplace_back(s.as_string());
  return h;
}

std::string to_json(const HandshakeComplete& h) {
  return fmt::format("{{\"HandshakeTimeToComplete\":{},\"CustomerMessage\":{}}}",
                     h.time_to_complete_ns, go_quote(h.customer_message));
}

Result<HandshakeComplete> parse_handshake_complete(std::string_view text) {
  PIER_ASSIGN(auto o, object_of(text, "handshake complete"));
  HandshakeComplete h;
  // Go decodes a time.Duration only from an integer.
  const auto* t = field(o, "HandshakeTimeToComplete");
  if (t && !t->is_int64() && !t->is_uint64() && !t->is_null()) return bad("handshake complete");
  h.time_to_complete_ns = int_field(o, "HandshakeTimeToComplete");
  h.customer_message = str_field(o, "CustomerMessage");
  return h;
}

std::string to_json(const AgentSessionState& s) {
  return fmt::format("{{\"SchemaVersion\":{},\"SessionState\":{},\"SessionId\":{}}}",
                     s.schema_version, go_quote(s.session_state), go_quote(s.session_id));
}

Result<AgentSessionState> parse_agent_session_state(std::string_view text) {
  PIER_ASSIGN(auto o, object_of(text, "agent session state"));
  AgentSessionState s;
  s.schema_version = int_field(o, "SchemaVersion");
  s.session_state = str_field(o, "SessionState");
  s.session_id = str_field(o, "SessionId");
  return s;
}

std::string to_json(const ClientOpenDataChannel& o) {
  std::string out = fmt::format(
      "{{\"MessageSchemaVersion\":{},\"RequestId\":{},\"TokenValue\":{},\"ClientId\":{}",
      go_quote(o.message_schema_version), go_quote(o.request_id), go_quote(o.token_value),
      go_quote(o.client_id));
  if (o.client_version) out += ",\"ClientVersion\":" + go_quote(*o.client_version);
  return out + "}";
}

std::string to_json(const AgentOpenDataChannel& o) {
  return fmt::format(
      "{{\"MessageSchemaVersion\":{},\"RequestId\":{},\"TokenValue\":{},\"ClientInstanceId\":{},"
      "\"ClientId\":{}}}",
      go_quote(o.message_schema_version), go_quote(o.request_id), go_quote(o.token_value),
      go_quote(o.client_instance_id), go_quote(o.client_id));
}

std::string to_json(const AgentOpenControlChannel& o) {
  return fmt::format(
      "{{\"Cookie\":null,\"MessageSchemaVersion\":{},\"RequestId\":{},\"TokenValue\":{},"
      "\"AgentVersion\":{},\"PlatformType\":{}}}",
      go_quote(o.message_schema_version), go_quote(o.request_id), go_quote(o.token_value),
      go_quote(o.agent_version), go_quote(o.platform_type));
}

Result<OpenChannel> parse_open_channel(std::string_view text) {
  PIER_ASSIGN(auto o, object_of(text, "open channel"));
  OpenChannel c;
  c.token_value = str_field(o, "TokenValue");
  c.request_id = str_field(o, "RequestId");
  c.client_id = str_field(o, "ClientId");
  c.client_instance_id = str_field(o, "ClientInstanceId");
  c.client_version = str_field(o, "ClientVersion");
  c.agent_version = str_field(o, "AgentVersion");
  if (c.token_value.empty()) return bad("open channel (no TokenValue)");
  return c;
}

std::string flag_payload(PayloadFlag f) {
  auto v = static_cast<uint32_t>(f);
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[static_cast<size_t>(i)] = static_cast<char>(v >> (24 - 8 * i));
  return out;
}

std::optional<PayloadFlag> parse_flag(std::string_view p) {
  if (p.size() != 4) return std::nullopt;
  uint32_t v = 0;
  for (char c : p) v = (v << 8) | static_cast<uint8_t>(c);
  if (v < 1 || v > 3) return std::nullopt;
  return static_cast<PayloadFlag>(v);
}

}  // namespace pier::exec

// The JSON payloads and first text frames of the Session Manager protocol
// (§4, §5.2, §6). Writers emit exactly what the Go peers emit (key order,
// null for empty slices, Go's escaping of <, >, &); readers match keys
// case-insensitively and ignore unknown ones, as Go's encoding/json does.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "exec/message.h"

namespace pier::exec {

// A JSON string literal as Go's encoding/json writes it.
std::string go_quote(std::string_view s);

struct Acknowledge {
  std::string message_type;
  std::string message_id;
  int64_t sequence = 0;
  bool is_sequential = true;
};
std::string to_json(const Acknowledge& a);
Result<Acknowledge> parse_acknowledge(std::string_view json);
// The ack a receiver sends for message m.
Message make_ack(const Message& m);

struct ChannelClosed {
  std::string message_id;
  std::string created_date;
  std::string destination_id;
  std::string session_id;
  std::string message_type = "channel_closed";
  int64_t schema_version = 1;
  std::string output;
};
std::string to_json(const ChannelClosed& c);
Result<ChannelClosed> parse_channel_closed(std::string_view json);

struct TerminalSize {
  uint32_t cols = 0;
  uint32_t rows = 0;
};
std::string to_json(const TerminalSize& s);
Result<TerminalSize> parse_size(std::string_view json);

struct ClientAction {
  std::string action_type;        // "SessionType", "KMSEncryption"
  std::string parameters_json;    // raw JSON of ActionParameters
};
struct HandshakeRequest {
  std::string agent_version;
  std::vector<ClientAction> actions;
};
std::string to_json(const HandshakeRequest& h);
Result<HandshakeRequest> parse_handshake_request(std::string_view json);

struct ProcessedAction {
  std::string action_type;
  int action_status = 1;           // 1 Success, 2 Failed, 3 Unsupported
  std::string action_result_json = "null";
  std::string error;
};
struct HandshakeResponse {
  std::string client_version;
  std::vector<ProcessedAction> actions;
  std::vector<std::string> errors;  // written as null when empty
};
std::string to_json(const HandshakeResponse& h);
Result<HandshakeResponse> parse_handshake_response(std::string_view json);

struct HandshakeComplete {
  int64_t time_to_complete_ns = 0;
  std::string customer_message;
};
std::string to_json(const HandshakeComplete& h);
Result<HandshakeComplete> parse_handshake_complete(std::string_view json);

struct AgentSessionState {
  int64_t schema_version = 1;
  std::string session_state;  // "Connected", "Terminating"
  std::string session_id;
};
std::string to_json(const AgentSessionState& s);
Result<AgentSessionState> parse_agent_session_state(std::string_view json);

// First text frame of a client's data channel (plugin OpenDataChannelInput).
struct ClientOpenDataChannel {
  std::string message_schema_version = "1.0";
  std::string request_id;
  std::string token_value;
  std::string client_id;
  std::optional<std::string> client_version;  // absent in older plugins
};
std::string to_json(const ClientOpenDataChannel& o);

// First text frame of an agent's data channel.
struct AgentOpenDataChannel {
  std::string message_schema_version = "1.0";
  std::string request_id;
  std::string token_value;
  std::string client_instance_id;
  std::string client_id;
};
std::string to_json(const AgentOpenDataChannel& o);

// First text frame of an agent's control channel.
struct AgentOpenControlChannel {
  std::string message_schema_version = "1.0";
  std::string request_id;
  std::string token_value;
  std::string agent_version;
  std::string platform_type = "linux";
};
std::string to_json(const AgentOpenControlChannel& o);

// What a broker reads from any first text frame: the token and who sent it.
struct OpenChannel {
  std::string token_value;
  std::string request_id;
  std::string client_id;
  std::string client_instance_id;
  std::string client_version;
  std::string agent_version;
};
Result<OpenChannel> parse_open_channel(std::string_view json);

// A Flag payload (PayloadType kFlag).
std::string flag_payload(PayloadFlag f);
std::optional<PayloadFlag> parse_flag(std::string_view payload);

}  // namespace pier::exec

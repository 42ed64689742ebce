// The SSM Session Manager binary frame (ClientMessage ≡ AgentMessage): one
// layout both ways, on data and control channels. See
// ../shared/docs/ssm-session-protocol.md §1–3. Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace pier::exec {

// A UUID as 16 canonical bytes (the order of its hex digits).
struct Uuid {
  std::array<uint8_t, 16> bytes{};
  static Uuid random();
  static std::optional<Uuid> parse(std::string_view text);
  std::string str() const;  // lower-case, hyphenated
  bool operator==(const Uuid&) const = default;
};

enum class PayloadType : uint32_t {
  kNone = 0,
  kOutput = 1,
  kError = 2,
  kSize = 3,
  kParameter = 4,
  kHandshakeRequest = 5,
  kHandshakeResponse = 6,
  kHandshakeComplete = 7,
  kEncChallengeRequest = 8,
  kEncChallengeResponse = 9,
  kFlag = 10,
  kStdErr = 11,
  kExitCode = 12,
};

// Flag payloads (PayloadType kFlag): 4 bytes, big-endian.
enum class PayloadFlag : uint32_t {
  kDisconnectToPort = 1,
  kTerminateSession = 2,
  kConnectToPortError = 3,
};

namespace message_type {
inline constexpr std::string_view kInputStreamData = "input_stream_data";
inline constexpr std::string_view kOutputStreamData = "output_stream_data";
inline constexpr std::string_view kAcknowledge = "acknowledge";
inline constexpr std::string_view kChannelClosed = "channel_closed";
inline constexpr std::string_view kStartPublication = "start_publication";
inline constexpr std::string_view kPausePublication = "pause_publication";
inline constexpr std::string_view kAgentSessionState = "agent_session_state";
inline constexpr std::string_view kInteractiveShell = "interactive_shell";
inline constexpr std::string_view kAgentTaskComplete = "agent_task_complete";
inline constexpr std::string_view kAgentTaskAcknowledge = "agent_task_acknowledge";
inline constexpr std::string_view kAgentTaskReply = "agent_task_reply";
}  // namespace message_type

inline constexpr uint32_t kHeaderLength = 116;
inline constexpr size_t kMinFrame = 120;
inline constexpr uint64_t kFlagSyn = 1;
inline constexpr uint64_t kFlagFin = 2;

struct Message {
  uint32_t header_length = kHeaderLength;
  std::string type;
  uint32_t schema_version = 1;
  uint64_t created_ms = 0;
  int64_t sequence = 0;
  uint64_t flags = 0;
  Uuid id;
  std::array<uint8_t, 32> digest{};  // as read; serialize() computes it
  PayloadType payload_type = PayloadType::kNone;
  uint32_t payload_length = 0;  // as read; serialize() writes the real length
  std::string payload;
};

// Writes a frame: HeaderLength 116, the SHA-256 of the payload, the real
// payload length. Fails only for a MessageType longer than 32 bytes. (Unlike
// AWS's serialisers it accepts an empty payload, which a broker may send.)
Result<std::string> serialize(const Message& m);

// Reads a frame. Refuses what the real parsers would crash or hang on: frames
// shorter than 120 bytes, and HeaderLength + 4 beyond the frame. The payload
// is everything after HeaderLength + 4; PayloadLength is kept as read.
Result<Message> parse(std::string_view frame);

// The checks each end applies after parsing (§1.5). The client skips them
// for start/pause_publication and checks the digest when PayloadLength != 0;
// the agent never checks the digest.
enum class Receiver { kClient, kAgent };
Status validate(const Message& m, Receiver who);

// A fresh message with a random id and the current time.
Message make_message(std::string_view type, int64_t sequence, uint64_t flags,
                     PayloadType payload_type, std::string payload);

uint64_t now_ms();

}  // namespace pier::exec

// libFuzzer target for the Session Manager frame parser and payload readers:
// nothing a peer sends may crash, hang or overrun. Round-trips what parses.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "exec/message.h"
#include "exec/payloads.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto m = pier::exec::parse(in);
  if (m.ok()) {
    (void)pier::exec::validate(*m, pier::exec::Receiver::kClient);
    (void)pier::exec::validate(*m, pier::exec::Receiver::kAgent);
    // A parsed message written again must parse to the same payload.
    if (m->type.size() <= 32) {
      auto out = pier::exec::serialize(*m);
      if (!out.ok()) __builtin_trap();
      auto again = pier::exec::parse(*out);
      if (!again.ok() || again->payload != m->payload || again->sequence != m->sequence) __builtin_trap();
    }
    std::string_view p = m->payload;
    (void)pier::exec::parse_acknowledge(p);
    (void)pier::exec::parse_channel_closed(p);
    (void)pier::exec::parse_size(p);
    (void)pier::exec::parse_handshake_request(p);
    (void)pier::exec::parse_handshake_response(p);
    (void)pier::exec::parse_handshake_complete(p);
    (void)pier::exec::parse_agent_session_state(p);
    (void)pier::exec::parse_flag(p);
  }
  (void)pier::exec::parse_open_channel(in);
  return 0;
}

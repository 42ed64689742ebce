// Reliable, ordered delivery of stream messages over a data channel (§5.4–5.7
// of the protocol spec): sequence numbers, the outgoing buffer with
// retransmission on an RTT-estimated timeout, and the receive side's
// in-order delivery with an out-of-order buffer. Shared by our plugin and our
// agent; the policy knobs reproduce each real end's behaviour. The clock is
// injected so the logic is tested without sleeping. Both classes are
// thread-safe (the real plugin's lack of a lock here is a known bug, §5.4).
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"
#include "exec/message.h"
#include "exec/payloads.h"

namespace pier::exec {

using SteadyClock = std::function<std::chrono::steady_clock::time_point()>;
SteadyClock steady_clock();

struct SenderPolicy {
  bool update_last_sent_on_resend = true;  // agent: yes; plugin: no
  size_t capacity = 100000;
  bool drop_oldest_when_full = false;      // plugin drops the oldest; agent sends unbuffered
  int max_resends = 0;                     // 0: unlimited (agent); plugin gives up at 3000
  static SenderPolicy client();
  static SenderPolicy agent();
};

class StreamSender {
 public:
  StreamSender(std::string message_type, SenderPolicy policy, SteadyClock clock);

  // Builds the next stream message (the next sequence number, assigned under
  // the lock) and keeps its bytes for retransmission. Returns the frame to send.
  Result<std::string> send(PayloadType type, std::string payload);

  // An acknowledgement from the peer: drops the first buffered message with
  // that sequence number and updates the RTT estimate. False if none matched.
  bool on_ack(int64_t sequence);

  // Called every 100 ms: the oldest unacknowledged frame if it has waited
  // longer than the RTO (or nothing).
  std::vector<std::string> tick();

  // Resends every buffered frame, oldest first (after a reconnect).
  std::vector<std::string> all_buffered() const;

  bool gave_up() const;
  std::chrono::nanoseconds rto() const;
  size_t buffered() const;
  int64_t next_sequence() const;

 private:
  struct Pending {
    int64_t sequence;
    std::string frame;
    std::chrono::steady_clock::time_point first_sent, last_sent;
    int resends = 0;
  };
  void sample(std::chrono::nanoseconds rtt);

  std::string type_;
  SenderPolicy policy_;
  SteadyClock clock_;
  mutable std::mutex mu_;
  int64_t next_ = 0;
  std::deque<Pending> pending_;
  double rtt_ns_ = 100e6, rttvar_ns_ = 0, rto_ns_ = 200e6;
  bool gave_up_ = false;
};

struct ReceiverPolicy {
  bool reack_duplicates = true;  // agent re-acks; the real plugin ignores (we re-ack, §5.5)
  size_t capacity = 100000;
  static ReceiverPolicy client();
  static ReceiverPolicy agent();
};

class StreamReceiver {
 public:
  explicit StreamReceiver(ReceiverPolicy policy);

  struct Outcome {
    bool ack = false;                // send an acknowledge for this message
    std::vector<Message> deliver;    // now deliverable, in order
  };
  // A stream message from the peer. ready=false: the handler cannot take it
  // yet, so an in-order message is neither consumed nor acknowledged (the
  // peer resends it).
  Outcome on_message(Message m, bool ready = true);
  int64_t expected() const;
  size_t buffered() const;

 private:
  ReceiverPolicy policy_;
  mutable std::mutex mu_;
  int64_t expected_ = 0;
  std::map<int64_t, Message> out_of_order_;
};

}  // namespace pier::exec

#include "exec/stream.h"

#include <algorithm>
#include <cmath>

namespace pier::exec {

SteadyClock steady_clock() {
  return [] { return std::chrono::steady_clock::now(); };
}

SenderPolicy SenderPolicy::client() {
  SenderPolicy p;
  p.update_last_sent_on_resend = false;
  p.capacity = 10000;
  p.drop_oldest_when_full = true;
  p.max_resends = 3000;
  return p;
}

SenderPolicy SenderPolicy::agent() { return SenderPolicy{}; }

ReceiverPolicy ReceiverPolicy::client() {
  ReceiverPolicy p;
  p.capacity = 10000;
  return p;
}

ReceiverPolicy ReceiverPolicy::agent() { return ReceiverPolicy{}; }

StreamSender::StreamSender(std::string message_type, SenderPolicy policy, SteadyClock clock)
    : type_(std::move(message_type)), policy_(policy), clock_(std::move(clock)) {}

Result<std::string> StreamSender::send(PayloadType type, std::string payload) {
  std::lock_guard lock(mu_);
  // The agent marks its first output message SYN; the client never sets flags.
  uint64_t flags = (type_ == message_type::kOutputStreamData && next_ == 0) ? kFlagSyn : 0;
  Message m = make_message(type_, next_, flags, type, std::move(payload));
  PIER_ASSIGN(std::string frame, serialize(m));
  auto now = clock_();
  if (pending_.size() >= policy_.capacity) {
    if (policy_.drop_oldest_when_full) {
      pending_.pop_front();
    } else {
      ++next_;
      return frame;  // sent once, not kept
    }
  }
  pending_.push_back({next_, frame, now, now, 0});
  ++next_;
  return frame;
}

void StreamSender::sample(std::chrono::nanoseconds rtt) {
  double s = static_cast<double>(rtt.count());
  rttvar_ns_ = 0.75 * rttvar_ns_ + 0.25 * std::fabs(rtt_ns_ - s);
  rtt_ns_ = 0.875 * rtt_ns_ + 0.125 * s;
  rto_ns_ = std::min(rtt_ns_ + std::max(10e6, 4 * rttvar_ns_), 1e9);
}

bool StreamSender::on_ack(int64_t sequence) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(pending_.begin(), pending_.end(),
                         [&](const Pending& p) { return p.sequence == sequence; });
  if (it == pending_.end()) return false;
  sample(clock_() - it->last_sent);
  pending_.erase(it);
  return true;
}

std::vector<std::string> StreamSender::tick() {
  std::lock_guard lock(mu_);
  if (pending_.empty() || gave_up_) return {};
  auto now = clock_();
  Pending& oldest = pending_.front();
  if (now - oldest.last_sent <= std::chrono::nanoseconds(static_cast<int64_t>(rto_ns_))) return {};
  if (policy_.max_resends && oldest.resends >= policy_.max_resends) {
    gave_up_ = true;
    return {};
  }
  ++oldest.resends;
  if (policy_.update_last_sent_on_resend) oldest.last_sent = now;
  return {oldest.frame};
}

std::vector<std::string> StreamSender::all_buffered() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& p : pending_) out.push_back(p.frame);
  return out;
}

bool StreamSender::gave_up() const {
  std::lock_guard lock(mu_);
  return gave_up_;
}

std::chrono::nanoseconds StreamSender::rto() const {
  std::lock_guard lock(mu_);
  return std::chrono::nanoseconds(static_cast<int64_t>(rto_ns_));
}

size_t StreamSender::buffered() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

int64_t StreamSender::next_sequence() const {
  std::lock_guard lock(mu_);
  return next_;
}

StreamReceiver::StreamReceiver(ReceiverPolicy policy) : policy_(policy) {}

StreamReceiver::Outcome StreamReceiver::on_message(Message m, bool ready) {
  std::lock_guard lock(mu_);
  Outcome out;
  if (m.sequence < expected_) {
    out.ack = policy_.reack_duplicates;
    return out;
  }
  if (m.sequence > expected_) {
    if (out_of_order_.size() >= policy_.capacity && !out_of_order_.count(m.sequence))
      return out;  // no room: dropped without an ack, so the peer resends it
    out.ack = true;
    out_of_order_.emplace(m.sequence, std::move(m));
    return out;
  }
  if (!ready) return out;
  out.ack = true;
  out.deliver.push_back(std::move(m));
  ++expected_;
  for (auto it = out_of_order_.find(expected_); it != out_of_order_.end();
       it = out_of_order_.find(expected_)) {
    out.deliver.push_back(std::move(it->second));
    out_of_order_.erase(it);
    ++expected_;
  }
  return out;
}

int64_t StreamReceiver::expected() const {
  std::lock_guard lock(mu_);
  return expected_;
}

size_t StreamReceiver::buffered() const {
  std::lock_guard lock(mu_);
  return out_of_order_.size();
}

}  // namespace pier::exec

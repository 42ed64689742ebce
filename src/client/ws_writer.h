// Serialized writes to one client::WebSocket from coroutines on its
// (single-threaded) executor: the agent's and the plugin's channels. (The
// broker's channels are written from other threads and use their own,
// posting, queue.)
#pragma once

#include <boost/asio.hpp>

#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "client/transport.h"

namespace pier::client {

class WsWriter : public std::enable_shared_from_this<WsWriter> {
 public:
  explicit WsWriter(WebSocket& ws) : ws_(ws) {}
  void send(std::string frame, bool text = false) {
    if (stopped_) return;
    q_.emplace_back(std::move(frame), text);
    if (!busy_) {
      busy_ = true;  // before the drain starts, wherever co_spawn runs it
      boost::asio::co_spawn(ws_.executor(), drain(shared_from_this()), boost::asio::detached);
    }
  }
  bool idle() const { return !busy_ && q_.empty(); }
  // No more writes: the socket is being replaced or closed.
  void stop() { stopped_ = true; }

 private:
  static boost::asio::awaitable<void> drain(std::shared_ptr<WsWriter> self) {
    while (!self->q_.empty() && !self->stopped_) {
      auto [f, text] = std::move(self->q_.front());
      self->q_.pop_front();
      auto ec = co_await self->ws_.write(f, text);
      if (ec) break;
    }
    self->busy_ = false;
  }
  WebSocket& ws_;
  std::deque<std::pair<std::string, bool>> q_;
  bool busy_ = false;
  bool stopped_ = false;
};

}  // namespace pier::client

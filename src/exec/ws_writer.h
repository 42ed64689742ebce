// Serialized writes to one WebSocket from coroutines on its (single-threaded)
// executor: the agent's and the plugin's channels. (The broker's channels are
// written from other threads and use their own, posting, queue.)
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <deque>
#include <memory>
#include <string>
#include <utility>

namespace pier::exec {

using ClientWs = boost::beast::websocket::stream<boost::beast::tcp_stream>;

class WsWriter : public std::enable_shared_from_this<WsWriter> {
 public:
  explicit WsWriter(ClientWs& ws) : ws_(ws) {}
  void send(std::string frame, bool text = false) {
    if (stopped_) return;
    q_.emplace_back(std::move(frame), text);
    if (!busy_) boost::asio::co_spawn(ws_.get_executor(), drain(shared_from_this()), boost::asio::detached);
  }
  bool idle() const { return !busy_ && q_.empty(); }
  void stop() { stopped_ = true; }

 private:
  static boost::asio::awaitable<void> drain(std::shared_ptr<WsWriter> self) {
    self->busy_ = true;
    while (!self->q_.empty() && !self->stopped_) {
      auto [f, text] = std::move(self->q_.front());
      self->q_.pop_front();
      self->ws_.text(text);
      auto [ec, n] = co_await self->ws_.async_write(boost::asio::buffer(f),
                                                    boost::asio::as_tuple(boost::asio::use_awaitable));
      if (ec) break;
    }
    self->busy_ = false;
  }
  ClientWs& ws_;
  std::deque<std::pair<std::string, bool>> q_;
  bool busy_ = false;
  bool stopped_ = false;
};

}  // namespace pier::exec

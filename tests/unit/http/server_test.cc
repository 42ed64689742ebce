#include "http/server.h"

#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "client/transport.h"

namespace pier::http {
namespace {

namespace websocket = beast::websocket;
namespace bhttp = beast::http;

// A server on a free loopback port, run by one thread for the test.
struct Running {
  explicit Running(UpgradeHandler up) : server({&ioc}, [](Request& req, const Peer&) {
      return make_response(req.version(), bhttp::status::ok, "text/plain", "plain\n");
    }) {
    server.set_upgrade_handler(std::move(up));
    auto ep = server.listen("127.0.0.1", 0);
    EXPECT_TRUE(ep.ok());
    port = ep->port();
    server.start();
    thread = std::thread([this] { ioc.run(); });
  }
  ~Running() {
    server.shutdown();
    server.close_all();
    ioc.stop();
    thread.join();
  }
  asio::io_context ioc{1};
  Server server;
  uint16_t port = 0;
  std::thread thread;
};

Upgrade echo_or_refuse(Request& req, const Peer&) {
  Upgrade u;
  if (req.target() != "/echo") {
    u.refuse = make_response(req.version(), bhttp::status::forbidden, "text/plain", "no\n");
    return u;
  }
  u.run = [](WsStream& ws) -> asio::awaitable<void> {
    for (;;) {
      beast::flat_buffer buf;
      auto [ec, n] = co_await ws.read(buf);
      if (ec) co_return;
      auto wec = co_await ws.write(buf.data(), ws.got_binary());
      if (wec) co_return;
    }
  };
  return u;
}

TEST(WebSocketUpgrade, EchoesTextAndBinaryFrames) {
  Running r(echo_or_refuse);
  asio::io_context client;
  websocket::stream<tcp::socket> ws(client);
  ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), r.port));
  ws.handshake("127.0.0.1", "/echo");
  ws.text(true);
  ws.write(asio::buffer(std::string("{\"hello\":1}")));
  beast::flat_buffer buf;
  ws.read(buf);
  EXPECT_TRUE(ws.got_text());
  EXPECT_EQ(beast::buffers_to_string(buf.data()), "{\"hello\":1}");
  std::string bin("\x00\x01\x02", 3);
  ws.binary(true);
  ws.write(asio::buffer(bin));
  buf.clear();
  ws.read(buf);
  EXPECT_TRUE(ws.got_binary());
  EXPECT_EQ(beast::buffers_to_string(buf.data()), bin);
  ws.close(websocket::close_code::normal);
}

TEST(WebSocketUpgrade, RefusedUpgradeGetsTheHttpResponse) {
  Running r(echo_or_refuse);
  asio::io_context client;
  websocket::stream<tcp::socket> ws(client);
  ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), r.port));
  websocket::response_type res;
  boost::system::error_code ec;
  ws.handshake(res, "127.0.0.1", "/elsewhere", ec);
  EXPECT_TRUE(ec);
  EXPECT_EQ(res.result(), bhttp::status::forbidden);
}

// pier's own client (agent, plugin) keeps what a refusal says: pierd's 403
// names the permission the credentials lack, and that is what a user needs.
TEST(WebSocketUpgrade, OurClientReportsTheRefusalsStatusAndBody) {
  Running r(echo_or_refuse);
  auto url = client::Url::parse("ws://127.0.0.1:" + std::to_string(r.port) + "/elsewhere?role=x");
  ASSERT_TRUE(url.ok());
  asio::io_context ioc;
  std::optional<Error> refused;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    client::Headers headers;
    client::ConnectOptions opts;
    auto ws = co_await client::WebSocket::connect(*url, headers, opts);
    if (!ws.ok()) refused = ws.error();
  }, asio::detached);
  ioc.run();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->message, "WebSocket upgrade of /elsewhere: 403 Forbidden: no");
}

TEST(WebSocketUpgrade, ShutdownClosesOpenWebSockets) {
  auto r = std::make_unique<Running>(echo_or_refuse);
  asio::io_context client;
  websocket::stream<tcp::socket> ws(client);
  ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), r->port));
  ws.handshake("127.0.0.1", "/echo");
  r->server.shutdown();
  beast::flat_buffer buf;
  boost::system::error_code ec;
  ws.read(buf, ec);  // the server side goes away
  EXPECT_TRUE(ec);
  r.reset();
}

}  // namespace
}  // namespace pier::http

// pier::client transport: what pier's own clients (the agent, the plugin,
// `pier`) need to reach an AWS endpoint — URLs, plain or TLS connections with
// names resolved by client::resolve, one HTTP request, and a WebSocket that
// hides whether it runs over TLS. Coroutines on the caller's executor.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "client/resolve.h"
#include "common/error.h"

namespace pier::client {

struct Url {
  bool tls = false;      // https:// or wss://
  std::string host;      // without brackets
  uint16_t port = 0;
  std::string target;    // path and query, at least "/"

  // http, https, ws and wss URLs.
  static Result<Url> parse(std::string_view url);
  // host[:port] as the Host header carries it (the port only when not the default).
  std::string authority() const;
};

struct ConnectOptions {
  ResolverOptions dns;
  // PEM file of the CAs to trust for TLS; empty: the system's (as
  // AWS_CA_BUNDLE does for the SDKs).
  std::string ca_file;
  std::chrono::milliseconds timeout{15000};  // resolve + connect + handshake
  // A WebSocket that hears nothing (no frame, no pong) for this long is
  // closed, so a path that vanished without a FIN is noticed and the caller
  // reconnects; a ping goes out after half of it. pierd pings every 5 s.
  std::chrono::seconds ws_idle_timeout{20};
};

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  unsigned status = 0;
  std::string body;
  std::string error_type;  // x-amzn-ErrorType (REST-JSON errors)
};

// One request, one response, connection closed. `req` needs method, target
// and headers; Host is set from the URL when missing.
boost::asio::awaitable<Result<HttpResponse>> http_request(
    const Url& url, boost::beast::http::request<boost::beast::http::string_body> req,
    const ConnectOptions& opts);

class WebSocket {
 public:
  // Connects, upgrades with `headers` added (e.g. SigV4), and returns the
  // open socket. Messages up to 64 MiB; see ConnectOptions::ws_idle_timeout.
  static boost::asio::awaitable<Result<std::unique_ptr<WebSocket>>> connect(const Url& url, const Headers& headers,
                                                                            const ConnectOptions& opts);
  ~WebSocket();

  boost::asio::awaitable<boost::system::error_code> read(boost::beast::flat_buffer& buf);
  boost::asio::awaitable<boost::system::error_code> write(std::string_view data, bool text);
  // Closes the socket at once (pending reads and writes fail).
  void close();
  boost::asio::any_io_executor executor() const;

 private:
  struct Impl;
  explicit WebSocket(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pier::client

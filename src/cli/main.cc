// pier: the command people type. Talks to pierd over its AWS endpoint.
#include <CLI/CLI.hpp>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <unistd.h>

#include <thread>

#include <boost/beast/websocket.hpp>

#include "aws/sigv4.h"
#include "common/strings.h"
#include "exec/message.h"
#include "exec/payloads.h"
#include "exec/stream.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace json = boost::json;

struct Credentials {
  std::string key = "test", secret = "test", token;
};

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// The standard chain: environment, then the shared credentials file's
// profile, else pier's default root credentials.
Credentials credentials() {
  Credentials c;
  if (!env("AWS_ACCESS_KEY_ID").empty() && !env("AWS_SECRET_ACCESS_KEY").empty()) {
    c.key = env("AWS_ACCESS_KEY_ID");
    c.secret = env("AWS_SECRET_ACCESS_KEY");
    c.token = env("AWS_SESSION_TOKEN");
    return c;
  }
  std::string file = env("AWS_SHARED_CREDENTIALS_FILE");
  if (file.empty() && !env("HOME").empty()) file = env("HOME") + "/.aws/credentials";
  std::string profile = env("AWS_PROFILE").empty() ? "default" : env("AWS_PROFILE");
  std::ifstream in(file);
  std::string line, section;
  Credentials found;
  bool any = false;
  while (std::getline(in, line)) {
    auto t = std::string(pier::str::trim(line));
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      section = std::string(pier::str::trim(std::string_view(t).substr(1, t.size() - 2)));
      continue;
    }
    if (section != profile) continue;
    auto eq = t.find('=');
    if (eq == std::string::npos) continue;
    auto k = std::string(pier::str::trim(std::string_view(t).substr(0, eq)));
    auto v = std::string(pier::str::trim(std::string_view(t).substr(eq + 1)));
    if (k == "aws_access_key_id") found.key = v, any = true;
    if (k == "aws_secret_access_key") found.secret = v;
    if (k == "aws_session_token") found.token = v;
  }
  return any ? found : c;
}

struct Endpoint {
  std::string host = "127.0.0.1", port = "4566";
};

std::optional<Endpoint> parse_endpoint(std::string url) {
  if (url.starts_with("http://")) url = url.substr(7);
  else return std::nullopt;
  auto slash = url.find('/');
  url = url.substr(0, slash);
  Endpoint e;
  auto colon = url.rfind(':');
  if (colon == std::string::npos) {
    e.host = url;
    e.port = "80";
  } else {
    e.host = url.substr(0, colon);
    e.port = url.substr(colon + 1);
  }
  return e;
}

struct Reply {
  unsigned status = 0;
  std::string body;
};

std::optional<Reply> send(const Endpoint& ep, bhttp::request<bhttp::string_body>& req, std::string& err) {
  try {
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(30));
    stream.connect(resolver.resolve(ep.host, ep.port));
    bhttp::write(stream, req);
    beast::flat_buffer buf;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(stream, buf, res);
    return Reply{res.result_int(), res.body()};
  } catch (const std::exception& e) {
    err = e.what();
    return std::nullopt;
  }
}

// A signed POST to "/" with the given extra headers (query or JSON protocol).
std::optional<Reply> call_signed(const Endpoint& ep, const std::string& service,
                                 std::vector<std::pair<std::string, std::string>> headers,
                                 const std::string& body, std::string& err) {
  std::string region = env("AWS_REGION").empty() ? env("AWS_DEFAULT_REGION") : env("AWS_REGION");
  if (region.empty()) region = "us-east-1";
  Credentials c = credentials();
  pier::aws::sigv4::WireRequest w;
  w.method = "POST";
  w.path = "/";
  w.headers = {{"Host", ep.host + ":" + ep.port}};
  for (auto& h : headers) w.headers.push_back(std::move(h));
  w.body = body;
  pier::aws::sigv4::sign(w, c.key, c.secret, region, service, std::chrono::system_clock::now(), c.token);
  bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/", 11};
  for (const auto& [k, v] : w.headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  return send(ep, req, err);
}

std::optional<Reply> call_query(const Endpoint& ep, const std::string& service, const std::string& body,
                                std::string& err) {
  return call_signed(ep, service, {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}},
                     body, err);
}

std::optional<Reply> call_json(const Endpoint& ep, const std::string& service, const std::string& target,
                               const std::string& body, std::string& err) {
  return call_signed(ep, service, {{"Content-Type", "application/x-amz-json-1.1"}, {"X-Amz-Target", target}},
                     body, err);
}

// Quotes a word so that the agent's shell-style split gives it back.
std::string shell_quote(const std::string& w) {
  if (!w.empty() && w.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_") == std::string::npos)
    return w;
  std::string out = "'";
  for (char c : w) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// pier exec --target ID -- COMMAND…: a NonInteractiveCommands session, stdout
// and stderr apart, the remote exit code as ours.
int run_exec(const Endpoint& ep, const std::string& target, const std::vector<std::string>& command) {
  namespace websocket = beast::websocket;
  std::string joined;
  for (const auto& w : command) joined += (joined.empty() ? "" : " ") + shell_quote(w);
  json::object in{{"Target", target},
                  {"DocumentName", "AWS-StartNonInteractiveCommand"},
                  {"Parameters", json::object{{"command", json::array{json::value(joined)}}}}};
  std::string err;
  auto r = call_json(ep, "ssm", "AmazonSSM.StartSession", json::serialize(in), err);
  if (!r) {
    fmt::print(stderr, "pier: {}\n", err);
    return 255;
  }
  boost::system::error_code ec;
  auto v = json::parse(r->body, ec);
  if (ec || !v.is_object()) {
    fmt::print(stderr, "pier: unexpected answer to StartSession\n");
    return 255;
  }
  auto& o = v.as_object();
  auto str_of = [&](std::string_view k) {
    return o.contains(k) && o[k].is_string() ? std::string(o[k].as_string()) : std::string();
  };
  if (r->status != 200) {
    std::string type = str_of("__type");
    fmt::print(stderr, "An error occurred ({}) when calling the StartSession operation: {}\n",
               type.substr(type.find('#') + 1), str_of("message"));
    return 254;
  }
  std::string url = str_of("StreamUrl"), token = str_of("TokenValue");
  if (!url.starts_with("ws://")) {
    fmt::print(stderr, "pier: only ws:// stream URLs are supported yet, got {}\n", url);
    return 255;
  }
  std::string rest = url.substr(5);
  std::string hostport = rest.substr(0, rest.find('/'));
  std::string path = rest.substr(hostport.size());
  auto colon = hostport.rfind(':');
  std::string session_id = str_of("SessionId");
  try {
    asio::io_context ioc;
    asio::ip::tcp::resolver resolver(ioc);
    using Ws = websocket::stream<asio::ip::tcp::socket>;
    std::string client_id = pier::exec::Uuid::random().str();
    auto connect = [&](const std::string& tok) {
      auto ws = std::make_unique<Ws>(ioc);
      asio::connect(ws->next_layer(), resolver.resolve(hostport.substr(0, colon),
                                                       colon == std::string::npos ? "80" : hostport.substr(colon + 1)));
      ws->next_layer().set_option(asio::ip::tcp::no_delay(true));
      ws->handshake(hostport, path);
      ws->read_message_max(64 * 1024 * 1024);
      pier::exec::ClientOpenDataChannel open{"1.0", pier::exec::Uuid::random().str(), tok, client_id,
                                             std::string("1.2.677.0")};
      ws->text(true);
      ws->write(asio::buffer(pier::exec::to_json(open)));
      return ws;
    };
    // A broken data channel: ResumeSession for a fresh token, then the same
    // StreamUrl again; the receiver's state carries over (§5.12).
    auto resume = [&]() -> std::unique_ptr<Ws> {
      std::string why;
      for (int attempt = 0; attempt < 6; ++attempt) {
        std::this_thread::sleep_for(std::chrono::milliseconds(150 << attempt));
        auto rr = call_json(ep, "ssm", "AmazonSSM.ResumeSession",
                            json::serialize(json::object{{"SessionId", session_id}}), why);
        if (rr && rr->status != 200) why = fmt::format("ResumeSession: {} {}", rr->status, rr->body);
        if (!rr || rr->status != 200) continue;
        boost::system::error_code jec;
        auto rv = json::parse(rr->body, jec);
        if (jec || !rv.is_object()) continue;
        auto* t = rv.as_object().if_contains("TokenValue");
        if (!t || !t->is_string() || t->as_string().empty()) {
          fmt::print(stderr, "Session: {} timed out.\n", session_id);
          return nullptr;
        }
        try {
          return connect(std::string(t->as_string()));
        } catch (const std::exception& e) {
          why = e.what();
        }
      }
      fmt::print(stderr, "pier: session {} lost: {}\n", session_id, why);
      return nullptr;
    };
    auto ws = connect(token);
    pier::exec::StreamReceiver receiver(pier::exec::ReceiverPolicy::client());
    int code = 0;
    for (;;) {
      beast::flat_buffer buf;
      boost::system::error_code rec;
      ws->read(buf, rec);
      if (rec) {
        ws = resume();
        if (!ws) return 255;
        continue;
      }
      auto m = pier::exec::parse(beast::buffers_to_string(buf.data()));
      if (!m.ok() || !pier::exec::validate(*m, pier::exec::Receiver::kClient).ok()) continue;
      if (m->type == pier::exec::message_type::kChannelClosed) {
        if (auto c = pier::exec::parse_channel_closed(m->payload); c.ok() && !c->output.empty())
          fmt::print(stderr, "{}\n", c->output);
        break;
      }
      if (m->type != pier::exec::message_type::kOutputStreamData) continue;
      auto out = receiver.on_message(*m);
      if (out.ack) {
        auto ack = pier::exec::serialize(pier::exec::make_ack(*m));
        ws->binary(true);
        boost::system::error_code wec;
        if (ack.ok()) ws->write(asio::buffer(*ack), wec);
      }
      for (const auto& d : out.deliver) {
        switch (d.payload_type) {
          case pier::exec::PayloadType::kOutput:
            (void)!::write(1, d.payload.data(), d.payload.size());
            break;
          case pier::exec::PayloadType::kStdErr:
            (void)!::write(2, d.payload.data(), d.payload.size());
            break;
          case pier::exec::PayloadType::kExitCode:
            if (d.payload.starts_with("EXIT_CODE: ")) code = std::atoi(d.payload.c_str() + 11);
            break;
          default:
            break;
        }
      }
    }
    return code;
  } catch (const std::exception& e) {
    fmt::print(stderr, "pier: data channel: {}\n", e.what());
    return 255;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pier — a local AWS container environment"};
  std::string endpoint = env("AWS_ENDPOINT_URL").empty() ? "http://127.0.0.1:4566" : env("AWS_ENDPOINT_URL");
  app.add_option("--endpoint", endpoint, "pierd's URL (default $AWS_ENDPOINT_URL, else http://127.0.0.1:4566)");
  app.require_subcommand(1);
  auto* status = app.add_subcommand("status", "show what pierd serves and who you are to it");
  auto* whoami = app.add_subcommand("whoami", "sts get-caller-identity");
  auto* exec_cmd = app.add_subcommand("exec", "run a command in a target over Session Manager");
  std::string exec_target;
  std::vector<std::string> exec_command;
  exec_cmd->add_option("--target", exec_target, "the session target (e.g. mi-…)")->required();
  exec_cmd->add_option("command", exec_command, "the command and its arguments (after --)")->required();
  CLI11_PARSE(app, argc, argv);

  auto ep = parse_endpoint(endpoint);
  if (!ep) {
    fmt::print(stderr, "pier: --endpoint must be an http:// URL, got '{}'\n", endpoint);
    return 2;
  }
  std::string err;
  if (*exec_cmd) return run_exec(*ep, exec_target, exec_command);
  if (*status) {
    bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/_pier/health", 11};
    req.set(bhttp::field::host, ep->host);
    auto r = send(*ep, req, err);
    if (!r) {
      fmt::print(stderr, "pier: pierd is not reachable at {}: {}\n", endpoint, err);
      return 1;
    }
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    if (ec || !v.is_object()) {
      fmt::print(stderr, "pier: unexpected answer from {}\n", endpoint);
      return 1;
    }
    fmt::print("pierd at {}: {}\n", endpoint, json::value_to<std::string>(v.as_object()["status"]));
    std::string list;
    for (const auto& s : v.as_object()["services"].as_array()) list += " " + json::value_to<std::string>(s);
    fmt::print("services:{}\n", list);
  }
  if (*status || *whoami) {
    auto r = call_query(*ep, "sts", "Action=GetCallerIdentity&Version=2011-06-15", err);
    if (!r) {
      fmt::print(stderr, "pier: {}\n", err);
      return 1;
    }
    auto grab = [&](std::string_view tag) {
      auto b = r->body.find(fmt::format("<{}>", tag));
      auto e = r->body.find(fmt::format("</{}>", tag));
      if (b == std::string::npos || e == std::string::npos) return std::string();
      b += tag.size() + 2;
      return r->body.substr(b, e - b);
    };
    if (r->status != 200) {
      fmt::print(stderr, "pier: {}: {}\n", grab("Code"), grab("Message"));
      return 1;
    }
    fmt::print("caller: {} (account {})\n", grab("Arn"), grab("Account"));
  }
  return 0;
}

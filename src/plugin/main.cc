// session-manager-plugin: pier's drop-in for AWS's plugin. The AWS CLI runs it
// for `aws ssm start-session` and `aws ecs execute-command` with the argv and
// environment contract of the spec's §8.2:
//   argv[1] the StartSession answer (JSON), or the name of the environment
//           variable holding it (AWS_SSM_START_SESSION_RESPONSE, CLI ≥ 1.2.497)
//   argv[2] region, argv[3] "StartSession", argv[4] profile,
//   argv[5] the StartSession request (JSON), argv[6] the endpoint URL.
// The session itself is client::run_session; when its WebSocket drops it asks
// the endpoint for a fresh token (SSM ResumeSession, signed with the
// credentials the SDKs would find for that profile) and carries on.
//
// Not yet: Port sessions (port forwarding), KMS encryption.
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "client/aws_call.h"
#include "client/credentials.h"
#include "client/session.h"
#include "common/memory.h"
#include "common/strings.h"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace pier;
constexpr const char* kVersion = "1.2.677.0";

const json::value* ifield(const json::object& o, std::string_view key) {
  for (const auto& [k, v] : o)
    if (str::iequals(k, key)) return &v;
  return nullptr;
}

std::string sfield(const json::object& o, std::string_view key) {
  const auto* f = ifield(o, key);
  return f && f->is_string() ? std::string(f->as_string()) : std::string();
}

std::optional<client::SessionTicket> parse_session(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  client::SessionTicket t{sfield(v.as_object(), "SessionId"), sfield(v.as_object(), "StreamUrl"),
                          sfield(v.as_object(), "TokenValue")};
  if (t.session_id.empty() || t.stream_url.empty() || t.token.empty()) return std::nullopt;
  return t;
}

struct Context {
  client::Endpoint endpoint;
  client::CredentialsProvider creds = client::CredentialsProvider::from_environment();
};

asio::awaitable<int> session(client::SessionTicket ticket, std::shared_ptr<Context> ctx) {
  client::SessionOptions opts;
  opts.terminal = true;
  opts.connect = ctx->endpoint.connect;
  opts.client_version = kVersion;
  if (!ctx->endpoint.url.host.empty()) {
    opts.resume = [ctx, id = ticket.session_id]() -> asio::awaitable<Result<client::SessionTicket>> {
      auto c = co_await ctx->creds.get();
      if (!c.ok()) co_return c.error();
      json::object body;  // (not braced in the co_await: GCC 12)
      body["SessionId"] = id;
      auto r = co_await client::call_json(ctx->endpoint, "ssm", "AmazonSSM.ResumeSession", body, *c);
      if (!r.ok()) co_return r.error();
      co_return client::SessionTicket{id, sfield(*r, "StreamUrl"), sfield(*r, "TokenValue")};
    };
  }
  auto end = co_await client::run_session(ticket, opts);
  if (end.closed) {
    if (!end.output.empty())
      std::fprintf(stdout, "\n\nSessionId: %s : %s\n\n", ticket.session_id.c_str(), end.output.c_str());
    else
      std::fprintf(stdout, "\n\nExiting session with sessionId: %s.\n\n", ticket.session_id.c_str());
  } else {
    std::fprintf(stdout, "\n\nCannot perform start session: %s\n", end.error.c_str());
  }
  std::fflush(stdout);
  co_return 0;  // as AWS's plugin: the CLI's exit status is 0 either way
}

}  // namespace

int main(int argc, char** argv) {
  pier::memory::keep_freed_memory();
  if (argc == 1) {
    std::fputs("\nThe Session Manager plugin was installed successfully. Use the AWS CLI to start a session.\n\n",
               stdout);
    return 0;
  }
  if (argc == 2 && std::string_view(argv[1]) == "--version") {
    std::printf("%s\n", kVersion);
    return 0;
  }
  if (argc < 4) {
    std::printf("\nUnknown operation %s. \nUse session-manager-plugin --version to check the version.\n\n", argv[1]);
    return 0;
  }
  std::string response = argv[1];
  if (response.starts_with("AWS_SSM_START_SESSION_RESPONSE")) {
    const char* e = std::getenv("AWS_SSM_START_SESSION_RESPONSE");
    response = e ? e : "";
    unsetenv("AWS_SSM_START_SESSION_RESPONSE");
  }
  if (std::string_view(argv[3]) != "StartSession") {
    std::printf("Invalid Operation\n");
    return 0;
  }
  auto ticket = parse_session(response);
  if (!ticket) {
    std::printf("Cannot perform start session: the session response lacks SessionId, StreamUrl or TokenValue\n");
    return 0;
  }
  auto ctx = std::make_shared<Context>();
  if (argc > 4 && *argv[4] && !std::getenv("AWS_PROFILE")) setenv("AWS_PROFILE", argv[4], 1);
  ctx->creds = client::CredentialsProvider::from_environment();
  ctx->endpoint.region = argc > 2 && *argv[2] ? argv[2] : client::region_from_environment();
  if (const char* ca = std::getenv("AWS_CA_BUNDLE"); ca && *ca) ctx->endpoint.connect.ca_file = ca;
  // Without an endpoint argument the SDK's default would be AWS's own
  // (ssm.REGION.amazonaws.com): reconnects then go there.
  std::string endpoint = argc > 6 && *argv[6] ? argv[6] : fmt::format("https://ssm.{}.amazonaws.com", ctx->endpoint.region);
  if (auto u = client::Url::parse(endpoint); u.ok()) ctx->endpoint.url = *u;
  std::printf("\nStarting session with SessionId: %s\n", ticket->session_id.c_str());
  std::fflush(stdout);
  signal(SIGPIPE, SIG_IGN);
  asio::io_context ioc{1};
  int rc = 0;
  asio::co_spawn(ioc, session(*ticket, ctx), [&](std::exception_ptr, int r) {
    rc = r;
    ioc.stop();
  });
  ioc.run();
  client::restore_terminal();
  return rc;
}

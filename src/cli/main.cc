// pier: the command people type. Talks to pierd over its AWS endpoint with the
// same client library as the agent and the plugin (client/).
#include <CLI/CLI.hpp>
#include <archive.h>
#include <archive_entry.h>
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "client/aws_call.h"
#include "client/credentials.h"
#include "client/session.h"
#include "client/transport.h"
#include "common/memory.h"
#include "common/strings.h"
#include "net/kernel.h"
#include "runtime/container.h"

namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using namespace pier;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string sfield(const json::object& o, std::string_view k) {
  auto* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// Runs one coroutine to its end on a fresh io_context.
template <class T>
T run(asio::awaitable<T> a) {
  asio::io_context ioc{1};
  std::optional<T> out;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> { out.emplace(co_await std::move(a)); }, asio::detached);
  ioc.run();
  return out ? std::move(*out) : T(Error::internal("interrupted"));
}

// pier's root credentials when nothing else is configured (pierd's default
// account accepts test/test), else the standard chain.
Result<client::Credentials> credentials() {
  auto p = client::CredentialsProvider::from_environment();
  using Kind = client::CredentialsProvider::Kind;
  if (p.kind() == Kind::kNone) return client::Credentials{"test", "test", "", {}};
  auto c = run(p.get());
  // No such file or profile: pierd's default account all the same.
  if (!c.ok() && p.kind() == Kind::kSharedFile && c.error().kind == ErrorKind::kUnauthenticated)
    return client::Credentials{"test", "test", "", {}};
  return c;
}

void print_aws_error(const Error& e, std::string_view op) {
  if (e.kind == ErrorKind::kUnavailable || e.code == "InternalFailure")
    fmt::print(stderr, "pier: {}\n", e.message);
  else
    fmt::print(stderr, "An error occurred ({}) when calling the {} operation: {}\n", e.code, op, e.message);
}

// Quotes a word so that the agent's shell-style split gives it back.
std::string shell_quote(const std::string& w) {
  if (!w.empty() && w.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_") == std::string::npos)
    return w;
  std::string out = "'";
  for (char c : w) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string shell_join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + shell_quote(w);
  return out;
}

// Runs a started session to its end: a raw terminal, or stdout and stderr
// apart with the remote exit code as ours.
int run_ticket(const client::Endpoint& ep, const client::Credentials& creds, const client::SessionTicket& ticket,
               bool terminal) {
  client::SessionOptions opts;
  opts.terminal = terminal;
  opts.connect = ep.connect;
  opts.resume = [&ep, c = creds, id = ticket.session_id]() -> asio::awaitable<Result<client::SessionTicket>> {
    json::object body;
    body["SessionId"] = id;
    auto r = co_await client::call_json(ep, "ssm", "AmazonSSM.ResumeSession", body, c);
    if (!r.ok()) co_return r.error();
    co_return client::SessionTicket{id, sfield(*r, "StreamUrl"), sfield(*r, "TokenValue")};
  };
  asio::io_context ioc{1};
  client::SessionEnd end;
  asio::co_spawn(ioc, client::run_session(ticket, opts), [&](std::exception_ptr, client::SessionEnd e) {
    end = std::move(e);
    ioc.stop();
  });
  ioc.run();
  client::restore_terminal();
  if (!end.closed) {
    fmt::print(stderr, "pier: session {} lost: {}\n", ticket.session_id, end.error);
    return 255;
  }
  if (!end.output.empty()) fmt::print(stderr, "{}\n", end.output);
  return end.exit_code;
}

// An SSM session on a target: with a command, NonInteractiveCommands —
// stdout and stderr apart, stdin not forwarded, the remote exit code as
// ours; without one, the default shell on the terminal.
int start_ssm_session(const client::Endpoint& ep, const client::Credentials& creds, const std::string& target,
                      const std::vector<std::string>& command) {
  bool interactive = command.empty();
  json::object in{{"Target", target}};
  if (!interactive) {
    in["DocumentName"] = "AWS-StartNonInteractiveCommand";
    in["Parameters"] = json::object{{"command", json::array{json::value(shell_join(command))}}};
  }
  auto started = run(client::call_json(ep, "ssm", "AmazonSSM.StartSession", in, creds));
  if (!started.ok()) {
    print_aws_error(started.error(), "StartSession");
    return 254;
  }
  client::SessionTicket ticket{sfield(*started, "SessionId"), sfield(*started, "StreamUrl"),
                               sfield(*started, "TokenValue")};
  return run_ticket(ep, creds, ticket, interactive);
}

// pier exec --target ID [-- COMMAND…]
int run_exec(const client::Endpoint& ep, const std::string& target, const std::vector<std::string>& command) {
  if (command.empty() && !isatty(0)) {
    fmt::print(stderr, "pier exec: no command given and stdin is not a terminal\n");
    return 2;
  }
  auto creds = credentials();
  if (!creds.ok()) {
    fmt::print(stderr, "pier: {}\n", creds.error().message);
    return 255;
  }
  return start_ssm_session(ep, *creds, target, command);
}

double number(const json::value* v) {
  return v && (v->is_double() || v->is_int64() || v->is_uint64()) ? v->to_number<double>() : 0;
}

bool looks_like_task(const std::string& ref) {
  if (ref.starts_with("arn:")) return ref.find(":task/") != std::string::npos;
  return ref.size() == 32 && ref.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// pier exec [--cluster C] TASK|SERVICE [-c CONTAINER] [-- COMMAND…]: ECS
// Exec. TASK is a task id or ARN; anything else names a service (its newest
// RUNNING task). On a terminal, ExecuteCommand (interactive, as AWS allows
// it; the command defaults to /bin/sh) and the session run here; without
// one, an SSM session with AWS-StartNonInteractiveCommand on the task's
// ecs: target, stdout and stderr apart and the remote exit code as ours.
int run_ecs_exec(const client::Endpoint& ep, const std::string& cluster, const std::string& ref,
                 const std::string& container, const std::vector<std::string>& command) {
  bool terminal = isatty(0) && isatty(1);
  if (!terminal && command.empty()) {
    fmt::print(stderr, "pier exec: no command given and stdin is not a terminal\n");
    return 2;
  }
  auto creds = credentials();
  if (!creds.ok()) {
    fmt::print(stderr, "pier: {}\n", creds.error().message);
    return 255;
  }
  auto ecs = [&](const std::string& action, const json::object& in) {
    return run(client::call_json(ep, "ecs", "AmazonEC2ContainerServiceV20141113." + action, in, *creds));
  };
  std::vector<std::string> refs{ref};
  bool by_service = !looks_like_task(ref);
  if (by_service) {
    auto l = ecs("ListTasks", json::object{{"cluster", cluster}, {"serviceName", ref}, {"desiredStatus", "RUNNING"}});
    if (!l.ok()) {
      print_aws_error(l.error(), "ListTasks");
      return 254;
    }
    refs.clear();
    if (const auto* a = l->if_contains("taskArns"); a && a->is_array())
      for (const auto& t : a->as_array())
        if (t.is_string()) refs.emplace_back(t.as_string());
    if (refs.empty()) {
      fmt::print(stderr, "pier exec: service {} has no running task in cluster {}\n", ref, cluster);
      return 254;
    }
  }
  json::array ids;
  for (const auto& r : refs) ids.emplace_back(r);
  auto d = ecs("DescribeTasks", json::object{{"cluster", cluster}, {"tasks", ids}});
  if (!d.ok()) {
    print_aws_error(d.error(), "DescribeTasks");
    return 254;
  }
  // The newest RUNNING one (a service's), or the one asked for.
  const json::object* task = nullptr;
  if (const auto* a = d->if_contains("tasks"); a && a->is_array())
    for (const auto& t : a->as_array()) {
      const auto& o = t.as_object();
      if (by_service && sfield(o, "lastStatus") != "RUNNING") continue;
      if (!task || number(o.if_contains("startedAt")) > number(task->if_contains("startedAt"))) task = &o;
    }
  if (!task) {
    fmt::print(stderr, "pier exec: {}\n", by_service ? "service " + ref + " has no RUNNING task yet"
                                                     : std::string("The task provided in the request was not found."));
    return 254;
  }
  const json::object* c = nullptr;
  if (const auto* a = task->if_contains("containers"); a && a->is_array())
    for (const auto& cv : a->as_array())
      if (container.empty() ? !c : sfield(cv.as_object(), "name") == container) c = &cv.as_object();
  if (!c || (container.empty() && task->at("containers").as_array().size() > 1)) {
    fmt::print(stderr, "pier exec: {}\n", container.empty() ? "the task has more than one container: name one with -c"
                                                            : "no container " + container + " in the task");
    return 254;
  }
  std::string cluster_arn = sfield(*task, "clusterArn"), task_arn = sfield(*task, "taskArn");
  if (!terminal) {
    std::string target = fmt::format("ecs:{}_{}_{}", cluster_arn.substr(cluster_arn.rfind('/') + 1),
                                     task_arn.substr(task_arn.rfind('/') + 1), sfield(*c, "runtimeId"));
    return start_ssm_session(ep, *creds, target, command);
  }
  std::string joined = shell_join(command);
  auto x = ecs("ExecuteCommand", json::object{{"cluster", cluster_arn}, {"task", task_arn}, {"container", sfield(*c, "name")},
                                              {"interactive", true}, {"command", joined.empty() ? "/bin/sh" : joined}});
  if (!x.ok()) {
    print_aws_error(x.error(), "ExecuteCommand");
    return 254;
  }
  json::object session = x->contains("session") && x->at("session").is_object() ? x->at("session").as_object() : json::object{};
  client::SessionTicket ticket{sfield(session, "sessionId"), sfield(session, "streamUrl"), sfield(session, "tokenValue")};
  return run_ticket(ep, *creds, ticket, true);
}

// pier ps: the live tasks and, for those with ECS Exec on, where their
// agents' control channels come from.
int run_ps(const client::Endpoint& ep);

int run_status(const client::Endpoint& ep, const std::string& endpoint, bool health) {
  if (health) {
    bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/_pier/health", 11};
    auto r = run(client::http_request(ep.url, std::move(req), ep.connect));
    if (!r.ok()) {
      fmt::print(stderr, "pier: pierd is not reachable at {}: {}\n", endpoint, r.error().message);
      return 1;
    }
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("services")) {
      fmt::print(stderr, "pier: unexpected answer from {}\n", endpoint);
      return 1;
    }
    fmt::print("pierd at {}: {}\n", endpoint, sfield(v.as_object(), "status"));
    std::string list;
    for (const auto& s : v.as_object()["services"].as_array())
      if (s.is_string()) list += " " + std::string(s.as_string());
    fmt::print("services:{}\n", list);
  }
  auto creds = credentials();
  if (!creds.ok()) {
    fmt::print(stderr, "pier: {}\n", creds.error().message);
    return 1;
  }
  client::Headers headers;
  headers.emplace_back("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
  auto r = run(client::signed_request(ep, "sts", "POST", "/", headers, "Action=GetCallerIdentity&Version=2011-06-15",
                                      *creds));
  if (!r.ok()) {
    fmt::print(stderr, "pier: {}\n", r.error().message);
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
  return 0;
}

// pier net exec ENI -- COMMAND…: the command inside the ENI's namespace
// (pierd says which), as a task in that subnet would run it.
int run_net_exec(const client::Endpoint& ep, const std::string& eni, const std::vector<std::string>& command) {
  bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/_pier/net/eni/" + eni, 11};
  auto r = run(client::http_request(ep.url, std::move(req), ep.connect));
  if (!r.ok()) {
    fmt::print(stderr, "pier: {}\n", r.error().message);
    return 255;
  }
  boost::system::error_code ec;
  auto v = json::parse(r->body, ec);
  if (ec || !v.is_object() || r->status != 200) {
    fmt::print(stderr, "pier: {}\n", v.is_object() ? sfield(v.as_object(), "message") : r->body);
    return 255;
  }
  std::string ns = sfield(v.as_object(), "netns");
  int fd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
    fmt::print(stderr, "pier: cannot enter {}: {} (pier net exec needs root)\n", ns, std::strerror(errno));
    return 255;
  }
  // As in a task of that subnet: names go to the VPC's resolver. The
  // command gets a mount namespace of its own in which /etc/resolv.conf says
  // so (nothing changes for anyone else); a VPC without DNS support has none.
  std::string resolver = sfield(v.as_object(), "resolver");
  if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
    fmt::print(stderr, "pier: /etc/resolv.conf stays the host's: {}\n", std::strerror(errno));
  } else {
    char path[] = "/tmp/pier-resolv-XXXXXX";
    int rf = mkstemp(path);
    if (rf >= 0) {
      std::string text = resolver.empty() ? std::string("# no DNS: the VPC has DNS support off\n")
                                          : fmt::format("nameserver {}\noptions timeout:2 attempts:2\n", resolver);
      bool ok = ::write(rf, text.data(), text.size()) == static_cast<ssize_t>(text.size());
      ::fchmod(rf, 0644);
      ::close(rf);
      if (!ok || mount(path, "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0)
        fmt::print(stderr, "pier: /etc/resolv.conf stays the host's: {}\n", std::strerror(errno));
      ::unlink(path);
    }
  }
  std::vector<char*> args;
  for (const auto& a : command) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execvp(args[0], args.data());
  fmt::print(stderr, "pier: {}: {}\n", command[0], std::strerror(errno));
  return 127;
}

// An OCI image layout directory as one tar (files and directories only, as
// the layout has), for the upload.
Result<std::string> pack_layout(const std::string& dir) {
  namespace fs = std::filesystem;
  char path[] = "/tmp/pier-layout-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return Error::internal(std::strerror(errno));
  ::close(fd);
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (archive_write_open_filename(a, path) != ARCHIVE_OK) {
    archive_write_free(a);
    return Error::internal(fmt::format("{}: cannot write", path));
  }
  std::error_code ec;
  std::vector<char> buf(1 << 16);
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto& p = it->path();
    std::string rel = fs::relative(p, dir).string();
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, rel.c_str());
    bool is_dir = it->is_directory();
    archive_entry_set_filetype(e, is_dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e, is_dir ? 0755 : 0644);
    archive_entry_set_size(e, is_dir ? 0 : static_cast<la_int64_t>(fs::file_size(p)));
    archive_write_header(a, e);
    if (!is_dir) {
      std::ifstream in(p, std::ios::binary);
      while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        if (in.gcount() > 0) archive_write_data(a, buf.data(), static_cast<size_t>(in.gcount()));
      }
    }
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  if (ec) return Error::internal(fmt::format("{}: {}", dir, ec.message()));
  return std::string(path);
}

Result<json::object> pier_call(const client::Endpoint& ep, const std::string& method, const std::string& target,
                               std::string body) {
  PIER_ASSIGN(auto creds, credentials());
  auto r = run(client::signed_request(ep, "pier", method, target, {{"Content-Type", "application/json"}},
                                      std::move(body), creds));
  if (!r.ok()) return r.error();
  boost::system::error_code ec;
  auto v = json::parse(r->body, ec);
  json::object o = !ec && v.is_object() ? v.as_object() : json::object{};
  if (r->status >= 300) {
    std::string msg = sfield(o, "message").empty() ? sfield(o, "Message") : sfield(o, "message");
    std::string code = !r->error_type.empty() ? r->error_type : sfield(o, "__type").empty() ? sfield(o, "code") : sfield(o, "__type");
    if (auto colon = code.find(':'); colon != std::string::npos) code.resize(colon);
    if (auto h = code.find('#'); h != std::string::npos) code = code.substr(h + 1);
    return Error::invalid(code.empty() ? "Error" : code, msg.empty() ? r->body : msg);
  }
  return o;
}

int run_ps(const client::Endpoint& ep) {
  auto r = pier_call(ep, "GET", "/_pier/ps", "");
  if (!r.ok()) {
    print_aws_error(r.error(), "ps");
    return 254;
  }
  fmt::print("{:<20} {:<32} {:<26} {:<9} {:<12} {:<20} {}\n", "CLUSTER", "TASK", "GROUP", "STATUS", "IP", "CONTAINER",
             "EXEC");
  if (const auto* list = r->if_contains("tasks"); list && list->is_array())
    for (const auto& tv : list->as_array()) {
      const auto& t = tv.as_object();
      const auto* cs = t.if_contains("containers");
      if (!cs || !cs->is_array()) continue;
      for (const auto& cv : cs->as_array()) {
        const auto& c = cv.as_object();
        std::string exec = "-";
        if (c.contains("agent")) {
          bool connected = c.contains("connected") && c.at("connected").is_bool() && c.at("connected").as_bool();
          if (connected && c.contains("path") && c.at("path").is_object())
            exec = "connected via " + sfield(c.at("path").as_object(), "text");
          else
            exec = fmt::format("agent {}, not connected", sfield(c, "agent"));
        }
        fmt::print("{:<20} {:<32} {:<26} {:<9} {:<12} {:<20} {}\n", sfield(t, "cluster"), sfield(t, "taskId"),
                   sfield(t, "group"), sfield(t, "lastStatus"), sfield(t, "privateIPv4Address"), sfield(c, "name"), exec);
      }
    }
  return 0;
}

void print_image(const json::object& i) {
  auto digest = sfield(i, "digest");
  int64_t size = i.contains("size") && i.at("size").is_int64() ? i.at("size").as_int64() : 0;
  fmt::print("{:<40} {:<19} {:<8} {:>8.1f} MB\n", sfield(i, "name"), digest.substr(0, 19), sfield(i, "architecture"),
             static_cast<double>(size) / 1e6);
}

// pier image import NAME PATH | base NAME | ls | rm NAME
int run_image(const client::Endpoint& ep, const std::string& verb, const std::string& name, const std::string& path) {
  Result<json::object> r = json::object{};
  if (verb == "ls") {
    r = pier_call(ep, "GET", "/_pier/images", "");
    if (r.ok()) {
      fmt::print("{:<40} {:<19} {:<8} {:>11}\n", "NAME", "DIGEST", "ARCH", "SIZE");
      if (const auto* list = r->if_contains("images"); list && list->is_array())
        for (const auto& i : list->as_array()) print_image(i.as_object());
      return 0;
    }
  } else if (verb == "rm") {
    r = pier_call(ep, "DELETE", "/_pier/images?name=" + str::uri_encode(name, false), "");
    if (r.ok()) {
      fmt::print("removed {}\n", name);
      return 0;
    }
  } else if (verb == "base") {
    r = pier_call(ep, "POST", "/_pier/images/base", json::serialize(json::object{{"name", name}}));
  } else {
    std::string file = path, packed;
    if (std::filesystem::is_directory(path)) {
      auto p = pack_layout(path);
      if (!p.ok()) {
        fmt::print(stderr, "pier: {}\n", p.error().message);
        return 1;
      }
      file = packed = *p;
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "pier: {}: {}\n", path, std::strerror(errno));
      return 1;
    }
    std::string id;
    uint64_t offset = 0;
    std::string chunk(8 << 20, '\0');
    bool first = true;
    while (r.ok() && (first || in)) {
      first = false;
      in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      std::string body(chunk.data(), static_cast<size_t>(in.gcount()));
      uint64_t n = body.size();
      r = pier_call(ep, "POST", fmt::format("/_pier/images/upload?offset={}{}", offset, id.empty() ? "" : "&id=" + id),
                    std::move(body));
      if (r.ok()) id = sfield(*r, "upload");
      offset += n;
    }
    if (!packed.empty()) ::unlink(packed.c_str());
    if (r.ok()) r = pier_call(ep, "POST", "/_pier/images/import", json::serialize(json::object{{"name", name}, {"upload", id}}));
  }
  if (!r.ok()) {
    print_aws_error(r.error(), "image " + verb);
    return 1;
  }
  if (const auto* i = r->if_contains("image"); i && i->is_object()) {
    fmt::print("{:<40} {:<19} {:<8} {:>11}\n", "NAME", "DIGEST", "ARCH", "SIZE");
    print_image(i->as_object());
  }
  return 0;
}

// pier down --all --home DIR: every container and namespace of that
// instance (and with them their links), whether its pierd runs or not;
// nothing of another's.
int run_down(const std::string& home) {
  std::string tag = net::instance_tag(home);
  std::string prefix = net::netns_prefix(tag);
  int failed = 0;
  runtime::Runtime rt((std::filesystem::path(home) / "containers").string(), tag, "");
  if (auto d = rt.destroy_all(); !d.ok()) {
    fmt::print(stderr, "pier: {}\n", d.error().message);
    ++failed;
  }
  for (const auto& ns : net::list_netns(prefix)) {
    if (auto d = net::delete_netns(ns); !d.ok()) {
      fmt::print(stderr, "pier: {}\n", d.error().message);
      ++failed;
    }
  }
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  pier::memory::keep_freed_memory();
  CLI::App app{"pier — a local AWS container environment"};
  std::string endpoint = env("AWS_ENDPOINT_URL").empty() ? "http://127.0.0.1:4566" : env("AWS_ENDPOINT_URL");
  std::string ca = env("AWS_CA_BUNDLE");
  app.add_option("--endpoint", endpoint, "pierd's URL (default $AWS_ENDPOINT_URL, else http://127.0.0.1:4566)");
  app.add_option("--ca-bundle", ca, "PEM file of the CAs to trust for https (default $AWS_CA_BUNDLE)");
  app.require_subcommand(1);
  auto* status = app.add_subcommand("status", "show what pierd serves and who you are to it");
  auto* whoami = app.add_subcommand("whoami", "sts get-caller-identity");
  auto* exec_cmd = app.add_subcommand(
      "exec", "run a command (or, on a terminal, a shell) in an ECS task's container (ECS Exec) or a Session Manager target");
  std::string exec_target, exec_cluster = "default", exec_container, exec_task;
  std::vector<std::string> exec_command;
  exec_cmd->add_option("--target", exec_target, "a Session Manager target (e.g. mi-…) instead of a task");
  exec_cmd->add_option("--cluster", exec_cluster, "the task's cluster (default: default)");
  exec_cmd->add_option("-c,--container", exec_container, "the container (needed when the task has several)");
  exec_cmd->add_option("task", exec_task, "a task id or ARN, or a service name (its newest RUNNING task)");
  auto* ps_cmd = app.add_subcommand("ps", "the running tasks, and how each exec agent reaches ssmmessages");
  auto* net_cmd = app.add_subcommand("net", "the VPC networks pierd runs");
  net_cmd->require_subcommand(1);
  auto* net_exec = net_cmd->add_subcommand("exec", "run a command inside an ENI's network namespace");
  std::string eni;
  std::vector<std::string> net_command;
  net_exec->add_option("eni", eni, "the network interface (eni-…)")->required();
  // (Everything after "--" is the command: split off before parsing.)
  auto* image_cmd = app.add_subcommand("image", "the images tasks run (pierd's local store)");
  image_cmd->require_subcommand(1);
  std::string image_name, image_path;
  auto* image_import = image_cmd->add_subcommand("import", "import a root-filesystem tarball or an OCI image layout");
  image_import->add_option("name", image_name, "NAME[:TAG]")->required();
  image_import->add_option("path", image_path, "a tarball (tar, tar.gz, tar.zst) or an OCI layout (directory or tar)")->required();
  auto* image_base = image_cmd->add_subcommand("base", "build a small image from the host's busybox-static, offline");
  image_base->add_option("name", image_name, "NAME[:TAG]")->required();
  auto* image_ls = image_cmd->add_subcommand("ls", "list the images");
  auto* image_rm = image_cmd->add_subcommand("rm", "remove an image (its tag, or every tag of a digest)");
  image_rm->add_option("name", image_name, "NAME[:TAG] or NAME@sha256:…")->required();
  auto* down = app.add_subcommand("down", "remove the kernel objects of a pierd instance");
  bool down_all = false;
  std::string down_home;
  down->add_flag("--all", down_all, "every namespace and link of the instance")->required();
  down->add_option("--home", down_home, "the instance's home (as given to pierd)")->required();
  std::vector<std::string> after_dashes;
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--") {
      for (int j = i + 1; j < argc; ++j) after_dashes.emplace_back(argv[j]);
      argc = i;
      break;
    }
  CLI11_PARSE(app, argc, argv);
  if (down->parsed()) return run_down(down_home);
  exec_command = after_dashes;
  net_command = after_dashes;
  if (net_exec->parsed() && net_command.empty()) {
    fmt::print(stderr, "pier net exec: no command (give it after --)\n");
    return 2;
  }
  if (exec_cmd->parsed() && exec_target.empty() == exec_task.empty()) {
    fmt::print(stderr, "pier exec: give a task or service, or --target (not both)\n");
    return 2;
  }

  auto url = client::Url::parse(endpoint);
  if (!url.ok()) {
    fmt::print(stderr, "pier: --endpoint: {}\n", url.error().message);
    return 2;
  }
  client::Endpoint ep;
  ep.url = *url;
  ep.region = client::region_from_environment();
  ep.connect.ca_file = ca;
  signal(SIGPIPE, SIG_IGN);
  if (exec_cmd->parsed() && !exec_target.empty()) return run_exec(ep, exec_target, exec_command);
  if (exec_cmd->parsed()) return run_ecs_exec(ep, exec_cluster, exec_task, exec_container, exec_command);
  if (ps_cmd->parsed()) return run_ps(ep);
  if (net_exec->parsed()) return run_net_exec(ep, eni, net_command);
  if (whoami->parsed()) return run_status(ep, endpoint, false);
  if (image_import->parsed()) return run_image(ep, "import", image_name, image_path);
  if (image_base->parsed()) return run_image(ep, "base", image_name, "");
  if (image_ls->parsed()) return run_image(ep, "ls", "", "");
  if (image_rm->parsed()) return run_image(ep, "rm", image_name, "");
  return run_status(ep, endpoint, status->parsed());
}

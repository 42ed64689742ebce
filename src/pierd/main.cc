// pierd: the pier control plane. One endpoint for every AWS API.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <sys/file.h>
#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "aws/model.h"
#include "common/log.h"
#include "common/memory.h"
#include "controllers/network.h"
#include "controllers/tasks.h"
#include "http/server.h"
#include "net/kernel.h"
#include "pierd/builtins.h"
#include "pierd/images_api.h"
#include "pierd/listeners.h"
#include "runtime/container.h"
#include "runtime/images.h"
#include "store/store.h"
#include "tls/ca.h"

namespace {

bool split_listen(const std::string& listen, std::string& host, uint16_t& port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  try {
    int p = std::stoi(listen.substr(colon + 1));
    if (p < 0 || p > 65535) return false;
    port = static_cast<uint16_t>(p);
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pierd — a local AWS container environment"};
  std::string listen = "127.0.0.1:4566";
  const char* env_home = std::getenv("PIER_HOME");
  std::string home = env_home && *env_home ? env_home : "/var/lib/pier";
  std::string models = pier::aws::default_model_dir();
  std::string level = "info";
  unsigned threads = std::max(2u, std::thread::hardware_concurrency());
  app.add_option("--listen", listen, "HOST:PORT to serve on (PORT 0: any free port)");
  app.add_option("--home", home, "state directory (default $PIER_HOME, else /var/lib/pier)");
  app.add_option("--models", models, "directory of AWS service models");
  app.add_option("--log-level", level, "trace, debug, info, warn, error");
  app.add_option("--threads", threads, "network threads");
  std::string public_url;
  app.add_option("--public-url", public_url,
                 "base URL of the streamUrls handed out (default: the listen address)");
  CLI11_PARSE(app, argc, argv);

  pier::log::init(level);
  auto log = pier::log::get("pierd");

  std::string host;
  uint16_t port = 0;
  if (!split_listen(listen, host, port)) {
    fmt::print(stderr, "pierd: --listen wants HOST:PORT, got '{}'\n", listen);
    return 2;
  }

  std::error_code ec;
  std::filesystem::create_directories(home, ec);
  // One pierd per home: a second one would be a second writer.
  std::string lock_path = (std::filesystem::path(home) / "pierd.lock").string();
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    fmt::print(stderr, "pierd: another pierd is using the home '{}'\n", home);
    return 1;
  }

  auto store = pier::store::Store::open(home);
  if (!store.ok()) {
    fmt::print(stderr, "pierd: {}\n", store.error().message);
    return 1;
  }
  // One io_context per thread; the first also runs signals and the acceptor.
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts;
  std::vector<boost::asio::io_context*> context_ptrs;
  for (unsigned i = 0; i < std::max(1u, threads); ++i) {
    contexts.push_back(std::make_unique<boost::asio::io_context>(1));
    context_ptrs.push_back(contexts.back().get());
  }
  auto& ioc = *contexts[0];
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards;
  for (auto& c : contexts) guards.push_back(boost::asio::make_work_guard(*c));

  // The services are made once the real port is known (it is part of the
  // default public URL); the server serves nothing before start().
  std::unique_ptr<pier::pierd::Services> services;
  pier::http::Server server(context_ptrs, [&services](pier::http::Request& req, const pier::http::Peer& peer) {
    return services->dispatcher().handle(req, peer);
  });
  auto ep = server.listen(host, port);
  if (!ep.ok()) {
    fmt::print(stderr, "pierd: {}\n", ep.error().message);
    return 1;
  }
  std::string shown_host = ep->address().is_v6() ? "[" + ep->address().to_string() + "]" : ep->address().to_string();
  if (public_url.empty()) public_url = fmt::format("http://{}:{}", shown_host, ep->port());
  // The network controller realizes the EC2 objects in the kernel; it needs
  // root (namespaces, links), so without it pierd serves the API alone.
  std::unique_ptr<pier::controllers::NetworkController> network;
  std::unique_ptr<pier::controllers::TaskController> tasks;
  if (geteuid() == 0) {
    network = std::make_unique<pier::controllers::NetworkController>(**store, pier::net::instance_tag(home));
  } else {
    log->warn("not root: no network controller, ENIs stay pending");
  }
  // pier's CA: what the endpoints inside VPCs and the simulated internet show.
  auto ca = pier::tls::Authority::open((std::filesystem::path(home) / "ca").string());
  if (!ca.ok()) {
    fmt::print(stderr, "pierd: {}\n", ca.error().message);
    return 1;
  }
  {
    auto s = pier::pierd::Services::create(**store, models, pier::time::system_clock(), public_url,
                                           [&network, &tasks] {
                                             if (network) network->kick();
                                             if (tasks) tasks->kick();
                                           });
    if (!s.ok()) {
      fmt::print(stderr, "pierd: {}\n", s.error().message);
      return 1;
    }
    services = std::move(s).value();
  }
  auto& dispatcher = services->dispatcher();
  dispatcher.add_unsigned({"GET", "/_pier/health", [&dispatcher](pier::http::Request& req, const pier::http::Peer&) {
    boost::json::array svcs;
    for (const auto& s : dispatcher.services()) svcs.emplace_back(s);
    boost::json::object body{{"status", "ok"}, {"services", svcs}};
    return pier::http::make_response(req.version(), boost::beast::http::status::ok,
                                     "application/json", boost::json::serialize(body));
  }});
  // Where an ENI's namespace is, for `pier net exec` (which needs root to
  // enter it anyway).
  dispatcher.add_unsigned({"GET", "/_pier/net/eni/", [&network](pier::http::Request& req, const pier::http::Peer&) {
    std::string_view target = req.target();
    std::string id(target.substr(std::string_view("/_pier/net/eni/").size()));
    bool valid = id.size() == 21 && id.starts_with("eni-") &&
                 id.find_first_not_of("0123456789abcdef", 4) == std::string::npos;
    auto ns = network && valid ? network->eni_netns(id) : std::nullopt;
    boost::json::object body;
    if (ns) {
      body["netns"] = *ns;
      body["resolver"] = network->eni_resolver(id);
    }
    else body["message"] = network ? "no namespace for " + id : "pierd runs without its network controller";
    return pier::http::make_response(req.version(), ns ? boost::beast::http::status::ok : boost::beast::http::status::not_found,
                                     "application/json", boost::json::serialize(body));
  }});
  server.set_upgrade_handler([&services](pier::http::Request& req, const pier::http::Peer& peer) {
    return services->upgrade(req, peer);
  });
  auto images = pier::runtime::ImageStore::open((std::filesystem::path(home) / "images").string());
  if (!images.ok()) {
    fmt::print(stderr, "pierd: images: {}\n", images.error().message);
    return 1;
  }
  pier::pierd::add_image_routes(dispatcher, **images, **store, (std::filesystem::path(home) / "uploads").string());
  std::unique_ptr<pier::runtime::Runtime> runtime;
  if (network) {
    std::error_code exe_ec;
    auto bin = std::filesystem::canonical("/proc/self/exe", exe_ec).parent_path();
    runtime = std::make_unique<pier::runtime::Runtime>((std::filesystem::path(home) / "containers").string(),
                                                       network->tag(), (bin / "pier-monitor").string());
    pier::controllers::TaskController::Config tc{home};
    if (std::filesystem::exists(bin / "pier-exec-agent", exe_ec)) tc.exec_agent = (bin / "pier-exec-agent").string();
    tc.ca_bundle = (std::filesystem::path(home) / "ca" / "ca.pem").string();
    tasks = std::make_unique<pier::controllers::TaskController>(**store, *network, **images, *runtime, std::move(tc));
  }
  std::unique_ptr<pier::pierd::NamespaceListeners> listeners;
  if (network) {
    listeners = std::make_unique<pier::pierd::NamespaceListeners>(
        server, ioc, **store, *ca, (std::filesystem::path(home) / "endpoint-access.log").string());
    network->set_listeners(listeners.get());
    listeners->set_link_local([&services](const pier::http::Request& req, const std::string& eni) {
      return services->link_local(req, eni);
    });
    network->set_after_pass([&tasks] { if (tasks) tasks->kick(); });
    tasks->set_on_network_change([&network] { network->kick(); });
    network->start();
    tasks->start();
    log->info("network controller on (namespaces pier-{}-…)", network->tag());
  }
  server.start();

  boost::asio::signal_set signals(ioc, SIGTERM, SIGINT);
  boost::asio::steady_timer drain(ioc);
  auto deadline = std::make_shared<std::chrono::steady_clock::time_point>();
  std::function<void()> poll;
  poll = [&] {
    if (server.active() == 0 || std::chrono::steady_clock::now() > *deadline) {
      server.close_all();
      for (auto& c : contexts) c->stop();
      return;
    }
    drain.expires_after(std::chrono::milliseconds(20));
    drain.async_wait([&](boost::system::error_code) { poll(); });
  };
  signals.async_wait([&](boost::system::error_code e, int sig) {
    if (e) return;
    log->info("signal {}: shutting down", sig);
    server.shutdown();
    *deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    poll();
  });

  std::string services_list;
  for (const auto& s : dispatcher.services()) services_list += (services_list.empty() ? "" : " ") + s;
  log->info("home {} (schema v{}), models {}, services: {}", home, (*store)->schema_version(), models,
            services_list);
  pier::memory::return_freed_memory();
  std::printf("pierd: ready on http://%s:%u\n", shown_host.c_str(), ep->port());
  std::fflush(stdout);

  std::vector<std::thread> pool;
  for (size_t i = 1; i < contexts.size(); ++i) pool.emplace_back([c = contexts[i].get()] { c->run(); });
  ioc.run();
  for (auto& t : pool) t.join();
  if (network) network->stop();  // its passes kick the task controller, which goes next
  tasks.reset();    // containers keep running; a restarted pierd adopts them
  network.reset();  // its thread calls into the listeners, which go next
  log->info("stopped");
  return 0;
}

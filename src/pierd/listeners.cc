#include "pierd/listeners.h"

#include <fmt/format.h>
#include <openssl/ssl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include <boost/json.hpp>

#include "aws/endpoints.h"
#include "common/log.h"
#include "common/time.h"
#include "net/sockets.h"
#include "services/ec2/resolver.h"

namespace pier::pierd {

using controllers::ListenerSpec;

AccessLog::AccessLog(const std::string& path) : path_(path) {
  f_ = std::fopen(path.c_str(), "ae");  // (not inherited by ip and nft)
  if (!f_) log::get("pierd")->warn("access log {}: cannot open", path);
}

AccessLog::~AccessLog() {
  if (f_) std::fclose(f_);
}

void AccessLog::record(const http::Peer& peer, const std::string& owner) {
  boost::json::object line{{"time", time::iso8601(time::epoch(std::chrono::system_clock::now()))},
                           {"listener", peer.listener},
                           {"owner", owner},
                           {"source", peer.address},
                           {"source_port", peer.port},
                           {"local", peer.local_address}};
  std::string text = boost::json::serialize(line) + "\n";
  std::lock_guard lock(mu_);
  if (!f_) return;
  std::fputs(text.c_str(), f_);
  std::fflush(f_);
}

namespace {

unsigned long netns_inode(const std::string& ns) {
  struct stat st {};
  if (::stat(("/run/netns/" + ns).c_str(), &st) != 0) return 0;
  return static_cast<unsigned long>(st.st_ino);
}

// The region a TLS client names: ssmmessages.eu-west-1.amazonaws.com, a
// bucket's name, vpce-….ssm.eu-west-1.vpce.amazonaws.com.
std::string region_of(std::string_view name) {
  if (auto m = aws::match_service_name(name)) return m->region;
  constexpr std::string_view kVpce = ".vpce.amazonaws.com";
  if (name.ends_with(kVpce)) {
    auto head = name.substr(0, name.size() - kVpce.size());
    auto dot = head.rfind('.');
    if (dot != std::string_view::npos) return std::string(head.substr(dot + 1));
  }
  return {};
}

}  // namespace

http::Response link_local(const http::Request& req, const std::string& eni_id) {
  namespace bhttp = boost::beast::http;
  if (req.method() == bhttp::verb::get && req.target() == "/_pier/eni") {
    boost::json::object body{{"NetworkInterfaceId", eni_id}};
    return http::make_response(req.version(), bhttp::status::ok, "application/json", boost::json::serialize(body));
  }
  boost::json::object body{{"message", fmt::format("nothing at {} for {}", std::string(req.target()), eni_id)}};
  return http::make_response(req.version(), bhttp::status::not_found, "application/json", boost::json::serialize(body));
}

NamespaceListeners::NamespaceListeners(http::Server& server, boost::asio::io_context& dns_context, store::Store& store,
                                       std::shared_ptr<tls::Authority> ca, const std::string& access_log_path)
    : server_(server), dns_context_(dns_context), store_(store), ca_(std::move(ca)), log_(access_log_path) {}

NamespaceListeners::~NamespaceListeners() {
  for (auto& [key, up] : up_) close(key, up);
}

Result<std::shared_ptr<boost::asio::ssl::context>> NamespaceListeners::context_for(const std::string& region) {
  std::lock_guard lock(mu_);
  if (auto it = contexts_.find(region); it != contexts_.end()) return it->second;
  PIER_ASSIGN(auto ctx, ca_->server_context(aws::certificate_names(region)));
  contexts_[region] = ctx;
  return ctx;
}

Result<std::shared_ptr<boost::asio::ssl::context>> NamespaceListeners::sni_context() {
  if (sni_) return sni_;
  // Every known region's certificate is made here, on the controller's
  // thread; a handshake only picks one (a client's SNI never makes one).
  for (const auto& r : aws::known_regions())
    if (auto c = context_for(r); !c.ok()) return c.error();
  PIER_ASSIGN(auto ctx, ca_->server_context(aws::certificate_names("us-east-1")));
  auto callback = +[](SSL* ssl, int*, void* arg) -> int {
    auto* self = static_cast<NamespaceListeners*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_OK;  // the default: us-east-1's names
    std::string region = region_of(name);
    if (region.empty() || region == "us-east-1") return SSL_TLSEXT_ERR_OK;
    std::shared_ptr<boost::asio::ssl::context> other;
    {
      std::lock_guard lock(self->mu_);
      if (auto it = self->contexts_.find(region); it != self->contexts_.end()) other = it->second;
    }
    if (other) SSL_set_SSL_CTX(ssl, other->native_handle());
    return SSL_TLSEXT_ERR_OK;
  };
  SSL_CTX_set_tlsext_servername_callback(ctx->native_handle(), callback);
  SSL_CTX_set_tlsext_servername_arg(ctx->native_handle(), this);
  sni_ = ctx;
  return ctx;
}

Status NamespaceListeners::open(const std::string& key, const ListenerSpec& spec, Up& up) {
  up.spec = spec;
  up.netns_inode = netns_inode(spec.netns);
  if (spec.kind == ListenerSpec::Kind::kDns) {
    PIER_ASSIGN(int udp, net::bound_socket(spec.netns, net::SocketKind::kUdp, spec.address, spec.port));
    auto tcp = net::bound_socket(spec.netns, net::SocketKind::kTcpListen, spec.address, spec.port);
    if (!tcp.ok()) {
      ::close(udp);
      return tcp.error();
    }
    auto lookup = [this, account = spec.account, region = spec.region, vpc = spec.vpc_id](
                      const dns::Question& q, const std::string&) {
      dns::Answer a;
      auto r = store_.read([&](store::Db& db) { return svc::ec2::resolve_in_vpc(db, account, region, vpc, q.name); });
      if (!r.ok()) {
        a.rcode = 2;  // SERVFAIL
        return a;
      }
      if (!r->exists) a.rcode = 3;  // NXDOMAIN
      if (q.type == dns::kTypeA) a.a = r->addresses;
      return a;
    };
    PIER_ASSIGN(up.dns, dns::Server::adopt(dns_context_, udp, *tcp, std::move(lookup)));
    return {};
  }
  http::ListenOptions o;
  o.name = key;
  // 169.254.170.2 in an ENI's namespace answers for that ENI alone.
  if (spec.address == controllers::kLinkLocalAddress)
    o.handler = [this, eni = spec.owner](http::Request& req, const http::Peer&) {
      return link_local_ ? link_local_(req, eni) : link_local(req, eni);
    };
  if (spec.kind == ListenerSpec::Kind::kHttps) {
    if (spec.region.empty()) {
      PIER_ASSIGN(o.tls, sni_context());
    } else {
      PIER_ASSIGN(o.tls, context_for(spec.region));
    }
    o.on_accept = [this, owner = spec.owner](const http::Peer& peer) { log_.record(peer, owner); };
  }
  PIER_ASSIGN(int fd, net::bound_socket(spec.netns, net::SocketKind::kTcpListen, spec.address, spec.port));
  auto ep = server_.adopt(fd, std::move(o));
  if (!ep.ok()) return ep.error();
  return {};
}

void NamespaceListeners::close(const std::string& key, Up& up) {
  if (up.dns) {
    up.dns->close();
    up.dns.reset();
  } else {
    server_.close_listener(key);
  }
}

std::set<std::string> NamespaceListeners::apply(const std::map<std::string, ListenerSpec>& want) {
  auto log = log::get("pierd");
  std::set<std::string> closed;
  for (auto it = up_.begin(); it != up_.end();) {
    auto w = want.find(it->first);
    // Gone, changed, or its namespace made anew (a socket stays in the one it was made in).
    if (w == want.end() || !(w->second == it->second.spec) || netns_inode(w->second.netns) != it->second.netns_inode) {
      log->info("listener {} closed", it->first);
      close(it->first, it->second);
      closed.insert(it->first);
      it = up_.erase(it);
    } else {
      ++it;
    }
  }
  std::set<std::string> out;
  for (const auto& [key, spec] : want) {
    if (up_.count(key)) {
      out.insert(key);
      continue;
    }
    Up up;
    auto s = open(key, spec, up);
    if (!s.ok() && closed.count(key)) {
      // Its old socket (closed just now, on the server's thread) may still hold the port.
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      up = Up{};
      s = open(key, spec, up);
    }
    if (!s.ok()) {
      log->warn("listener {} ({} {}:{}): {}", key, spec.netns, spec.address, spec.port, s.error().message);
      continue;
    }
    log->info("listener {} on {}:{} in {}", key, spec.address, spec.port, spec.netns);
    up_[key] = std::move(up);
    out.insert(key);
  }
  return out;
}

}  // namespace pier::pierd

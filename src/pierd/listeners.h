// pierd inside the network controller's namespaces: the listeners the
// controller asks for (controllers::Listeners), made with sockets from
// net::bound_socket and served by pierd's own HTTP server and the VPC
// resolver (dns::Server). TLS listeners show certificates of pier's CA for
// the AWS names of their region (chosen by SNI in the internet namespace,
// where one address answers for all regions). Every connection to an
// endpoint or a public address is written to the access log.
#pragma once

#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <map>
#include <memory>
#include <mutex>

#include "controllers/network.h"
#include "dns/server.h"
#include "http/server.h"
#include "store/store.h"
#include "tls/ca.h"

namespace pier::pierd {

// One line of JSON per connection: time, listener, owner, source, local.
class AccessLog {
 public:
  explicit AccessLog(const std::string& path);
  ~AccessLog();
  void record(const http::Peer& peer, const std::string& owner);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::mutex mu_;
  std::FILE* f_ = nullptr;
};

// What 169.254.170.2 answers in the namespace of ENI `eni_id` when nothing
// else is set: only GET /_pier/eni (which ENI the path belongs to).
http::Response link_local(const http::Request& req, const std::string& eni_id);
using LinkLocal = std::function<http::Response(const http::Request& req, const std::string& eni_id)>;

class NamespaceListeners final : public controllers::Listeners {
 public:
  NamespaceListeners(http::Server& server, boost::asio::io_context& dns_context, store::Store& store,
                     std::shared_ptr<tls::Authority> ca, const std::string& access_log_path);
  ~NamespaceListeners() override;

  std::set<std::string> apply(const std::map<std::string, controllers::ListenerSpec>& want) override;
  // What 169.254.170.2 answers (the task credentials and metadata); before start.
  void set_link_local(LinkLocal f) { link_local_ = std::move(f); }

 private:
  struct Up {
    controllers::ListenerSpec spec;
    unsigned long netns_inode = 0;
    std::unique_ptr<dns::Server> dns;  // or an HTTP listener named by the key
  };
  LinkLocal link_local_;
  Status open(const std::string& key, const controllers::ListenerSpec& spec, Up& up);
  void close(const std::string& key, Up& up);
  Result<std::shared_ptr<boost::asio::ssl::context>> context_for(const std::string& region);
  Result<std::shared_ptr<boost::asio::ssl::context>> sni_context();

  http::Server& server_;
  boost::asio::io_context& dns_context_;
  store::Store& store_;
  std::shared_ptr<tls::Authority> ca_;
  AccessLog log_;
  std::mutex mu_;  // guards contexts_ (SNI callbacks run on server threads)
  std::map<std::string, std::shared_ptr<boost::asio::ssl::context>> contexts_;  // by region
  std::shared_ptr<boost::asio::ssl::context> sni_;
  std::map<std::string, Up> up_;  // by key; apply() runs on the controller's thread only
};

}  // namespace pier::pierd

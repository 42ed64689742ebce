// The explicit list of services pierd serves (explicit lists survive static
// linking; self-registering globals may not).
#pragma once

#include <functional>
#include <memory>

#include "aws/dispatcher.h"
#include "store/store.h"

namespace pier::pierd {

struct Builtins;

// Builds every service over the store and registers it with the dispatcher.
class Services {
 public:
  // on_network_change: called when EC2 objects may have changed.
  static Result<std::unique_ptr<Services>> create(store::Store& store, const std::string& model_dir,
                                                  time::Clock clock, std::string public_url,
                                                  std::function<void()> on_network_change = {});
  ~Services();
  aws::Dispatcher& dispatcher();
  // WebSocket upgrades (the exec broker's channels).
  http::Upgrade upgrade(http::Request& req, const http::Peer& peer);
  // What 169.254.170.2 answers inside ENI `eni`'s namespace: the credentials
  // and metadata of the task that ENI belongs to (pierd/task_endpoints.cc).
  http::Response link_local(const http::Request& req, const std::string& eni);

 private:
  Services() = default;
  std::unique_ptr<Builtins> b_;
};

}  // namespace pier::pierd

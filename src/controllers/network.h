// The network controller: turns the EC2 objects in the store (the desired
// state) into kernel state, level-triggered — on start, on every change
// (kick()), and every few seconds — so that a pierd killed and restarted
// rebuilds what is missing and removes what the store no longer has.
//
// What it makes, all named pier-TAG-… (net::instance_tag of the home):
//  - a router namespace per VPC ("pier-TAG-vpc-…"), forwarding on, a bridge
//    per subnet ("pier-b" + 9 hex of the subnet id) holding the VPC router's
//    address, base + 1, so that the `local` route joins the subnets;
//  - a namespace per ENI ("pier-TAG-eni-…") with one veth: "pier-eth0"
//    inside (the ENI's MAC and address, default route via the router), its
//    peer "pier-v" + 9 hex on the subnet's bridge. VPCs share nothing, so
//    two with the same CIDR never meet.
//  - the ENI's security groups as a stateful nftables ruleset in its own
//    namespace (net/security_groups.h), replaced whenever its groups' rules
//    or their members change.
//  - what pierd answers inside those namespaces (Listeners below): the VPC's
//    resolver at base + 2 in the router namespace, 169.254.170.2 in every ENI
//    namespace, the interface endpoints on their ENIs' addresses (443, TLS),
//    and the public endpoints on 443 in the internet namespace.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "store/store.h"

namespace pier::controllers {

// Where every ENI reaches pierd (credentials, task metadata), in its own namespace.
inline constexpr const char* kLinkLocalAddress = "169.254.170.2";

// A socket pierd serves from inside one of the controller's namespaces.
struct ListenerSpec {
  enum class Kind { kDns, kHttp, kHttps };
  Kind kind = Kind::kHttp;
  std::string netns, address;
  uint16_t port = 0;
  std::string account, region, vpc_id;  // whose VPC (DNS), which region's names (HTTPS)
  std::string owner;                    // what it belongs to: "vpc-…", "eni-…", "vpce-…", "internet"
  bool operator==(const ListenerSpec&) const = default;
};

// pierd's side: makes and closes the listeners, by key.
class Listeners {
 public:
  virtual ~Listeners() = default;
  // Makes those in `want` that are not up (or whose namespace was made
  // anew), closes those no longer wanted; returns the keys that are up.
  virtual std::set<std::string> apply(const std::map<std::string, ListenerSpec>& want) = 0;
};

class NetworkController {
 public:
  NetworkController(store::Store& store, std::string tag);
  ~NetworkController();  // stops the thread; kernel state stays (it is desired state)

  // Call before start(); without it nothing listens inside the namespaces.
  void set_listeners(Listeners* listeners) { listeners_ = listeners; }
  // Runs after every pass (the task controller's kick: an ENI may be ready).
  void set_after_pass(std::function<void()> f) { after_pass_ = std::move(f); }
  void start();
  // Ends the thread (the object stays usable for calls from other threads).
  void stop();
  void kick();
  // One reconcile pass, now, on the caller's thread (tests, `pier down`).
  Status reconcile();
  // The namespace of an ENI, if it has one.
  std::optional<std::string> eni_netns(const std::string& eni_id) const;
  // The address of the resolver of the ENI's VPC ("" when it has DNS support off).
  std::string eni_resolver(const std::string& eni_id) const;
  const std::string& tag() const { return tag_; }

 private:
  void run();

  store::Store& store_;
  std::string tag_;
  std::mutex mu_;  // guards dirty_/stop_; reconcile_mu_ serializes passes
  std::mutex reconcile_mu_;
  std::condition_variable cv_;
  bool dirty_ = true, stop_ = false;
  Listeners* listeners_ = nullptr;
  std::function<void()> after_pass_;
  std::map<std::string, std::string> applied_;  // netns → the ruleset it has (under reconcile_mu_)
  std::thread thread_;
};

}  // namespace pier::controllers

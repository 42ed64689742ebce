#include "controllers/network.h"

#include <fmt/format.h>

#include <map>
#include <set>

#include "common/log.h"
#include "net/kernel.h"
#include "net/security_groups.h"
#include "services/ec2/cidr.h"
#include "services/util.h"

namespace pier::controllers {

namespace json = boost::json;
using namespace std::chrono_literals;
using svc::ec2::Cidr;

namespace {

struct Row {
  std::string account, region, id, type, vpc_id;
  json::object doc;
};

Result<std::vector<Row>> load(store::Store& store) {
  return store.read([&](store::Db& db) -> Result<std::vector<Row>> {
    PIER_ASSIGN(auto* st, db.prepare(
        "SELECT account, region, id, type, vpc_id, doc FROM ec2_objects "
        "WHERE type IN ('vpc', 'subnet', 'network-interface', 'security-group') ORDER BY id"));
    std::vector<Row> rows;
    for (;;) {
      PIER_ASSIGN(bool more, st->step());
      if (!more) break;
      Row r{st->text(0), st->text(1), st->text(2), st->text(3), st->text(4), {}};
      PIER_ASSIGN(r.doc, svc::parse_object(st->text(5)));
      rows.push_back(std::move(r));
    }
    return rows;
  });
}

std::string hex_of(const std::string& id) { return id.substr(id.find('-') + 1); }
std::string bridge_name(const std::string& subnet_id) { return "pier-b" + hex_of(subnet_id).substr(0, 9); }
std::string veth_name(const std::string& eni_id) { return "pier-v" + hex_of(eni_id).substr(0, 9); }

}  // namespace

NetworkController::NetworkController(store::Store& store, std::string tag) : store_(store), tag_(std::move(tag)) {}

NetworkController::~NetworkController() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NetworkController::start() { thread_ = std::thread([this] { run(); }); }

void NetworkController::kick() {
  {
    std::lock_guard lock(mu_);
    dirty_ = true;
  }
  cv_.notify_all();
}

void NetworkController::run() {
  auto log = log::get("net");
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, 5s, [&] { return stop_ || dirty_; });
    if (stop_) break;
    dirty_ = false;
    lock.unlock();
    if (auto r = reconcile(); !r.ok()) log->warn("reconcile: {}", r.error().message);
    lock.lock();
  }
}

std::optional<std::string> NetworkController::eni_netns(const std::string& eni_id) const {
  std::string name = net::netns_prefix(tag_) + eni_id;
  if (!net::netns_exists(name)) return std::nullopt;
  return name;
}

Status NetworkController::reconcile() {
  std::lock_guard pass(reconcile_mu_);
  auto log = log::get("net");
  PIER_ASSIGN(auto rows, load(store_));
  const std::string prefix = net::netns_prefix(tag_);

  struct Bridge {
    std::string name, router_cidr;  // "10.0.1.1/24"
  };
  struct Router {
    std::map<std::string, Bridge> bridges;  // by name
  };
  struct Eni {
    const Row* row;
    std::string router, bridge, veth, address, gateway, mac;
  };
  std::map<std::string, Router> routers;       // by netns name
  std::map<std::string, std::string> subnet_router, subnet_bridge, subnet_gw, subnet_prefix;
  std::map<std::string, Eni> enis;             // by netns name
  for (const auto& r : rows)
    if (r.type == "vpc") routers[prefix + r.id];
  for (const auto& r : rows) {
    if (r.type != "subnet") continue;
    auto c = Cidr::parse(svc::get_string(r.doc, "CidrBlock"));
    auto it = routers.find(prefix + r.vpc_id);
    if (!c || it == routers.end()) continue;
    Bridge b{bridge_name(r.id), fmt::format("{}/{}", c->address(1), c->prefix)};
    it->second.bridges[b.name] = b;
    subnet_router[r.id] = it->first;
    subnet_bridge[r.id] = b.name;
    subnet_gw[r.id] = c->address(1);
    subnet_prefix[r.id] = std::to_string(c->prefix);
  }
  for (const auto& r : rows) {
    if (r.type != "network-interface") continue;
    std::string sn = svc::get_string(r.doc, "SubnetId");
    if (!subnet_router.count(sn)) continue;
    enis[prefix + r.id] = Eni{&r, subnet_router[sn], subnet_bridge[sn], veth_name(r.id),
                              svc::get_string(r.doc, "PrivateIpAddress") + "/" + subnet_prefix[sn], subnet_gw[sn],
                              svc::get_string(r.doc, "MacAddress")};
  }

  // Security groups: each one's rules, and who is in it.
  std::map<std::string, const Row*> groups;
  std::map<std::string, std::vector<std::string>> members;
  for (const auto& r : rows)
    if (r.type == "security-group") groups[r.id] = &r;
  for (const auto& r : rows)
    if (r.type == "network-interface")
      if (const auto* gs = svc::get_array(r.doc, "Groups"))
        for (const auto& g : *gs) members[svc::get_string(g.as_object(), "GroupId")].push_back(svc::get_string(r.doc, "PrivateIpAddress"));

  // What the store no longer has goes first (its links go with it).
  for (const auto& ns : net::list_netns(prefix))
    if (!routers.count(ns) && !enis.count(ns)) {
      applied_.erase(ns);
      log->info("removing {}", ns);
      if (auto d = net::delete_netns(ns); !d.ok()) log->warn("{}", d.error().message);
    }

  Status first_error;
  auto note = [&](Status s, const std::string& what) {
    if (s.ok()) return true;
    log->warn("{}: {}", what, s.error().message);
    if (first_error.ok()) first_error = s;
    return false;
  };
  for (const auto& [ns, router] : routers) {
    if (!net::netns_exists(ns)) {
      log->info("creating {}", ns);
      if (!note(net::add_netns(ns), ns)) continue;
      if (!note(net::ip_batch(ns, "link set lo up\n"), ns)) continue;
      auto f = net::run_in(ns, {"sysctl", "-qw", "net.ipv4.ip_forward=1"});
      if (!note(f.ok() ? Status{} : Status(f.error()), ns)) continue;
    }
    auto have = net::links(ns, "bridge");
    if (!note(have.ok() ? Status{} : Status(have.error()), ns)) continue;
    std::set<std::string> present(have->begin(), have->end());
    std::string batch;
    for (const auto& [name, b] : router.bridges)
      if (!present.count(name))
        batch += fmt::format("link add {0} type bridge\naddr add {1} dev {0}\nlink set {0} up\n", name, b.router_cidr);
    for (const auto& name : present)
      if (name.starts_with("pier-b") && !router.bridges.count(name)) batch += fmt::format("link del {}\n", name);
    if (!batch.empty()) note(net::ip_batch(ns, batch), ns);
  }

  std::vector<const Row*> now_available;
  for (const auto& [ns, e] : enis) {
    if (!net::netns_exists(ns)) {
      applied_.erase(ns);
      if (!note(net::add_netns(ns), ns)) continue;
    }
    auto have = net::links(ns);
    if (!note(have.ok() ? Status{} : Status(have.error()), ns)) continue;
    bool wired = std::find(have->begin(), have->end(), "pier-eth0") != have->end();
    if (!wired) {
      // Both ends made straight in their namespaces; nothing touches pier's own.
      if (!note(net::ip_batch("", fmt::format("link add {} netns {} type veth peer name pier-eth0 netns {}\n",
                                              e.veth, e.router, ns)), ns))
        continue;
      if (!note(net::ip_batch(e.router, fmt::format("link set {} master {}\nlink set {} up\n", e.veth, e.bridge, e.veth)), ns))
        continue;
      if (!note(net::ip_batch(ns, fmt::format("link set lo up\nlink set pier-eth0 address {}\naddr add {} dev pier-eth0\n"
                                              "link set pier-eth0 up\nroute add default via {}\n",
                                              e.mac, e.address, e.gateway)), ns))
        continue;
    }
    std::vector<net::SgRule> rules;
    if (const auto* gs = svc::get_array(e.row->doc, "Groups"))
      for (const auto& g : *gs) {
        auto it = groups.find(svc::get_string(g.as_object(), "GroupId"));
        if (it == groups.end()) continue;
        if (const auto* rs = svc::get_array(it->second->doc, "_Rules"))
          for (const auto& rv : *rs) {
            const auto& o = rv.as_object();
            net::SgRule r;
            r.egress = o.at("IsEgress").as_bool();
            r.protocol = svc::get_string(o, "IpProtocol");
            r.from = static_cast<int>(o.at("FromPort").as_int64());
            r.to = static_cast<int>(o.at("ToPort").as_int64());
            r.cidr = svc::get_string(o, "CidrIpv4");
            r.group = svc::get_string(o, "ReferencedGroupId");
            rules.push_back(std::move(r));
          }
      }
    std::string ruleset = net::sg_ruleset(rules, members);
    if (applied_[ns] != ruleset) {
      if (!note(net::nft(ns, ruleset), ns + " security groups")) {
        applied_.erase(ns);
        continue;
      }
      applied_[ns] = ruleset;
    }
    if (svc::get_string(e.row->doc, "Status") == "pending") now_available.push_back(e.row);
  }
  if (!now_available.empty()) {
    auto w = store_.write([&](store::Db& db) -> Status {
      for (const auto* r : now_available) {
        // Read again: the ENI may have gone or changed meanwhile.
        PIER_ASSIGN(auto* st, db.prepare("SELECT doc FROM ec2_objects WHERE account=? AND region=? AND id=?"));
        st->args(r->account, r->region, r->id);
        PIER_ASSIGN(bool found, st->step());
        if (!found) continue;
        PIER_ASSIGN(auto doc, svc::parse_object(st->text(0)));
        st->reset();
        if (svc::get_string(doc, "Status") != "pending") continue;
        doc["Status"] = "available";
        PIER_ASSIGN(auto* up, db.prepare("UPDATE ec2_objects SET doc=? WHERE account=? AND region=? AND id=?"));
        PIER_TRY(up->args(json::serialize(doc), r->account, r->region, r->id).run());
      }
      return {};
    });
    note(w, "ENI status");
  }
  return first_error;
}

}  // namespace pier::controllers

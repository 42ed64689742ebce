#include "controllers/network.h"

#include <fmt/format.h>

#include <functional>
#include <map>
#include <set>

#include "aws/endpoints.h"
#include "common/log.h"
#include "net/kernel.h"
#include "net/security_groups.h"
#include "common/strings.h"
#include "services/ec2/cidr.h"
#include "services/ec2/ec2.h"
#include "services/ec2/resolver.h"
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
        "WHERE type IN ('vpc', 'subnet', 'network-interface', 'security-group', 'internet-gateway', "
        "'route-table', 'nat-gateway', 'elastic-ip', 'vpc-endpoint') ORDER BY id"));
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

NetworkController::~NetworkController() { stop(); }

void NetworkController::stop() {
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
    try {
      auto t0 = std::chrono::steady_clock::now();
      if (auto r = reconcile(); !r.ok()) log->warn("reconcile: {}", r.error().message);
      auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
      if (took > 1s) log->warn("reconcile took {} ms", took.count());
      if (after_pass_) after_pass_();
    } catch (const std::exception& e) {
      log->error("reconcile: {}", e.what());
    }
    lock.lock();
  }
}

std::optional<std::string> NetworkController::eni_netns(const std::string& eni_id) const {
  std::string name = net::netns_prefix(tag_) + eni_id;
  if (!net::netns_exists(name)) return std::nullopt;
  return name;
}

std::string NetworkController::eni_resolver(const std::string& eni_id) const {
  auto r = store_.read([&](store::Db& db) -> Result<std::string> {
    PIER_ASSIGN(auto* st, db.prepare("SELECT v.doc FROM ec2_objects e JOIN ec2_objects v ON v.id = e.vpc_id "
                                     "WHERE e.id = ? AND e.type = 'network-interface'"));
    st->args(eni_id);
    PIER_ASSIGN(bool found, st->step());
    if (!found) return std::string();
    PIER_ASSIGN(auto vpc, svc::parse_object(st->text(0)));
    return svc::ec2::resolver_address(vpc);
  });
  return r.ok() ? *r : std::string();
}

namespace {

// The desired kernel state, computed from the store alone.
struct Bridge {
  std::string name;
  Cidr subnet;
  std::string router_cidr() const { return fmt::format("{}/{}", subnet.address(1), subnet.prefix); }
};
struct Router {
  const Row* vpc = nullptr;
  std::map<std::string, Bridge> bridges;  // by name
  std::string igw_link;                   // "pier-i…" when an internet gateway is attached
  std::string igw_peer;                   // its end in the internet namespace
  // Public address → private address the internet gateway maps 1:1.
  std::map<std::string, std::string> public_ips;
  std::string routing;                    // the rules and tables, as one ip batch
  std::string resolver;                   // base + 2, when the VPC has DNS support
};
struct Eni {
  const Row* row;
  std::string router, bridge, veth, address, gateway, mac;
  std::string nat_gateway;  // set when this ENI is a NAT gateway's
  std::string endpoint;     // set when it is an interface endpoint's
  std::string resolver;     // its VPC's resolver (exempt from security groups, as on AWS)
};
struct Plan {
  std::map<std::string, Router> routers;  // by netns name
  std::map<std::string, Eni> enis;        // by netns name
  std::map<std::string, const Row*> groups;
  std::map<std::string, std::vector<std::string>> members;  // group → addresses
  std::vector<const Row*> nats_going;     // NAT gateways in "deleting"
  std::vector<const Row*> endpoints;      // interface endpoints, any state
  std::vector<const Row*> gateway_endpoints;
  std::string internet;                   // the internet namespace, when any VPC has a gateway
};

constexpr const char* kIgwRouterSide = "169.254.252.1";
constexpr const char* kIgwInternetSide = "169.254.252.2";
// Where the public endpoints of the AWS services live in the internet
// namespace (pierd serves them there).
constexpr const char* kServiceRange = aws::kPublicRange;
// 169.254.170.2, as on Fargate: an address of the ENI's own namespace, so the
// path tells pierd which ENI asks, and no route of the VPC is involved.
constexpr const char* kLinkLocal = kLinkLocalAddress;

std::string table_routes(const Row& table, const Plan& plan, const Router& router,
                         const std::map<std::string, const Row*>& by_id, int number) {
  std::string out;
  // Every table reaches every subnet of its VPC: the `local` route.
  for (const auto& [name, b] : router.bridges)
    out += fmt::format("route add {} dev {} table {}\n", b.subnet.str(), name, number);
  if (const auto* routes = svc::get_array(table.doc, "Routes"))
    for (const auto& rv : *routes) {
      const auto& r = rv.as_object();
      std::string dest = svc::get_string(r, "DestinationCidrBlock");
      if (std::string pl = svc::get_string(r, "DestinationPrefixListId"); !pl.empty()) {
        // A gateway endpoint: the service's addresses are delivered to pierd
        // in the router itself, for the subnets of this table only.
        for (const auto& cidr : svc::ec2::prefix_list_cidrs(pl, table.region))
          out += fmt::format("route replace local {} dev lo table {}\n", cidr, number);
        continue;
      }
      if (dest.empty() || svc::get_string(r, "GatewayId") == "local") continue;
      std::string via;
      if (std::string igw = svc::get_string(r, "GatewayId"); !igw.empty()) {
        if (!router.igw_link.empty() && by_id.count(igw) && by_id.at(igw)->vpc_id == router.vpc->id)
          via = fmt::format("via {} dev {} onlink", kIgwInternetSide, router.igw_link);
      } else if (std::string nat = svc::get_string(r, "NatGatewayId"); !nat.empty()) {
        for (const auto& [ns, e] : plan.enis)
          if (e.nat_gateway == nat) via = fmt::format("via {} dev {}", e.address.substr(0, e.address.find('/')), e.bridge);
      } else if (std::string eni = svc::get_string(r, "NetworkInterfaceId"); !eni.empty()) {
        for (const auto& [ns, e] : plan.enis)
          if (e.row->id == eni) via = fmt::format("via {} dev {}", e.address.substr(0, e.address.find('/')), e.bridge);
      }
      // A target that is gone (or not made yet) drops, as AWS's blackhole routes do.
      out += via.empty() ? fmt::format("route replace blackhole {} table {}\n", dest, number)
                         : fmt::format("route replace {} {} table {}\n", dest, via, number);
    }
  return out;
}

Plan make_plan(const std::vector<Row>& rows, const std::string& prefix) {
  Plan plan;
  std::map<std::string, const Row*> by_id;
  for (const auto& r : rows) by_id[r.id] = &r;
  std::map<std::string, std::string> subnet_router, subnet_bridge, subnet_gw, subnet_prefix;
  for (const auto& r : rows)
    if (r.type == "vpc") {
      auto& router = plan.routers[prefix + r.id];
      router.vpc = &r;
      router.resolver = svc::ec2::resolver_address(r.doc);
    }
  std::map<std::string, std::string> endpoint_of_eni;
  for (const auto& r : rows)
    if (r.type == "vpc-endpoint" && svc::get_string(r.doc, "VpcEndpointType") == "Gateway" &&
        svc::get_string(r.doc, "State") == "available")
      plan.gateway_endpoints.push_back(&r);
  for (const auto& r : rows) {
    if (r.type != "vpc-endpoint" || svc::get_string(r.doc, "VpcEndpointType") != "Interface") continue;
    plan.endpoints.push_back(&r);
    std::string state = svc::get_string(r.doc, "State");
    if (state != "pending" && state != "available") continue;
    if (const auto* ids = svc::get_array(r.doc, "NetworkInterfaceIds"))
      for (const auto& id : *ids) endpoint_of_eni[std::string(id.as_string())] = r.id;
  }
  for (const auto& r : rows) {
    if (r.type != "subnet") continue;
    auto c = Cidr::parse(svc::get_string(r.doc, "CidrBlock"));
    auto it = plan.routers.find(prefix + r.vpc_id);
    if (!c || it == plan.routers.end()) continue;
    Bridge b{bridge_name(r.id), *c};
    it->second.bridges[b.name] = b;
    subnet_router[r.id] = it->first;
    subnet_bridge[r.id] = b.name;
    subnet_gw[r.id] = c->address(1);
    subnet_prefix[r.id] = std::to_string(c->prefix);
  }
  // NAT gateways: their ENIs are their namespaces.
  std::map<std::string, std::string> nat_of_eni;
  for (const auto& r : rows) {
    if (r.type != "nat-gateway") continue;
    std::string state = svc::get_string(r.doc, "State");
    if (state == "deleting") plan.nats_going.push_back(&r);
    if (state != "pending" && state != "available") continue;
    for (const auto& a : r.doc.at("NatGatewayAddresses").as_array())
      nat_of_eni[svc::get_string(a.as_object(), "NetworkInterfaceId")] = r.id;
  }
  for (const auto& r : rows) {
    if (r.type != "network-interface") continue;
    std::string sn = svc::get_string(r.doc, "SubnetId");
    if (!subnet_router.count(sn)) continue;
    if (svc::get_string(r.doc, "InterfaceType") == "natGateway" && !nat_of_eni.count(r.id)) continue;  // going
    plan.enis[prefix + r.id] = Eni{&r, subnet_router[sn], subnet_bridge[sn], veth_name(r.id),
                                   svc::get_string(r.doc, "PrivateIpAddress") + "/" + subnet_prefix[sn], subnet_gw[sn],
                                   svc::get_string(r.doc, "MacAddress"),
                                   nat_of_eni.count(r.id) ? nat_of_eni[r.id] : "",
                                   endpoint_of_eni.count(r.id) ? endpoint_of_eni[r.id] : "",
                                   plan.routers[subnet_router[sn]].resolver};
  }
  for (const auto& r : rows)
    if (r.type == "security-group") plan.groups[r.id] = &r;
  for (const auto& r : rows)
    if (r.type == "network-interface")
      if (const auto* gs = svc::get_array(r.doc, "Groups"))
        for (const auto& g : *gs)
          plan.members[svc::get_string(g.as_object(), "GroupId")].push_back(svc::get_string(r.doc, "PrivateIpAddress"));
  // Internet gateways, and the public addresses they map.
  for (const auto& r : rows) {
    if (r.type != "internet-gateway" || r.vpc_id.empty()) continue;
    auto it = plan.routers.find(prefix + r.vpc_id);
    if (it == plan.routers.end()) continue;
    it->second.igw_link = "pier-i" + hex_of(r.id).substr(0, 9);
    it->second.igw_peer = "pier-g" + hex_of(r.id).substr(0, 9);
    plan.internet = prefix + "inet";
  }
  for (const auto& r : rows) {
    if (r.type != "elastic-ip") continue;
    std::string eni = svc::get_string(r.doc, "NetworkInterfaceId");
    auto e = plan.enis.find(prefix + eni);
    if (eni.empty() || e == plan.enis.end()) continue;
    plan.routers[e->second.router].public_ips[svc::get_string(r.doc, "PublicIp")] = svc::get_string(r.doc, "PrivateIpAddress");
  }
  // Route tables: one kernel table each (100, 101, … in id order within
  // the VPC), chosen by the subnet's bridge; a subnet without its own
  // association uses the main table.
  for (auto& [ns, router] : plan.routers) {
    if (!router.vpc) continue;
    std::vector<const Row*> tables;
    for (const auto& r : rows)
      if (r.type == "route-table" && r.vpc_id == router.vpc->id) tables.push_back(&r);
    std::map<std::string, int> table_of_subnet;
    int main_table = 0, number = 100;
    for (const auto* t : tables) {
      router.routing += table_routes(*t, plan, router, by_id, number);
      for (const auto& a : t->doc.at("Associations").as_array()) {
        const auto& o = a.as_object();
        if (o.at("Main").as_bool()) main_table = number;
        else if (std::string sn = svc::get_string(o, "SubnetId"); !sn.empty()) table_of_subnet[sn] = number;
      }
      ++number;
    }
    int pref = 1000;
    std::string rules;
    for (const auto& r : rows) {
      if (r.type != "subnet" || r.vpc_id != router.vpc->id) continue;
      int t = table_of_subnet.count(r.id) ? table_of_subnet[r.id] : main_table;
      if (t) rules += fmt::format("rule add iif {} lookup {} pref {}\n", subnet_bridge[r.id], t, pref++);
    }
    router.routing = rules + router.routing;
  }
  return plan;
}

// The internet gateway's 1:1 translation of public to private addresses,
// and what it lets through: only traffic of addresses that have a public one.
std::string igw_ruleset(const Router& r) {
  std::string mapped, pre, post;
  for (const auto& [pub, priv] : r.public_ips) {
    mapped += (mapped.empty() ? "" : ", ") + priv;
    pre += fmt::format("    iifname \"{}\" ip daddr {} dnat to {}\n", r.igw_link, pub, priv);
    post += fmt::format("    oifname \"{}\" ip saddr {} snat to {}\n", r.igw_link, priv, pub);
  }
  std::string out = "table ip pier_igw\ndelete table ip pier_igw\ntable ip pier_igw {\n";
  out += "  chain to_private {\n    type nat hook prerouting priority -100;\n" + pre + "  }\n";
  out += "  chain to_public {\n    type nat hook postrouting priority 100;\n" + post + "  }\n";
  out += "  chain gate {\n    type filter hook forward priority 0; policy accept;\n";
  if (mapped.empty()) {
    out += fmt::format("    oifname \"{}\" counter drop\n    iifname \"{}\" counter drop\n", r.igw_link, r.igw_link);
  } else {
    out += fmt::format("    oifname \"{}\" ip saddr != {{ {} }} counter drop\n", r.igw_link, mapped);
    out += fmt::format("    iifname \"{}\" ip daddr != {{ {} }} counter drop\n", r.igw_link, mapped);
  }
  return out + "  }\n}\n";
}

}  // namespace

Status NetworkController::reconcile() {
  std::lock_guard pass(reconcile_mu_);
  auto log = log::get("net");
  PIER_ASSIGN(auto rows, load(store_));
  const std::string prefix = net::netns_prefix(tag_);
  Plan plan = make_plan(rows, prefix);

  Status first_error;
  auto note = [&](Status s, const std::string& what) {
    if (s.ok()) return true;
    log->warn("{}: {}", what, s.error().message);
    if (first_error.ok()) first_error = s;
    return false;
  };
  auto sysctl = [&](const std::string& ns, std::vector<std::string> settings) {
    std::vector<std::string> argv = {"sysctl", "-qw"};
    argv.insert(argv.end(), settings.begin(), settings.end());
    auto f = net::run_in(ns, argv);
    return note(f.ok() ? Status{} : Status(f.error()), ns);
  };
  auto fresh = [&](const std::string& ns) {
    log->info("creating {}", ns);
    applied_.erase(ns);
    for (auto it = applied_.begin(); it != applied_.end();)
      it = it->first.starts_with(ns + "/") ? applied_.erase(it) : std::next(it);
    return note(net::add_netns(ns), ns) && note(net::ip_batch(ns, "link set lo up\n"), ns);
  };
  // Applies `text` with `apply` unless it is what the kernel already has.
  auto once = [&](const std::string& key, const std::string& text, const std::function<Status()>& apply) {
    if (applied_.count(key) && applied_[key] == text) return true;
    if (!note(apply(), key)) {
      applied_.erase(key);
      return false;
    }
    applied_[key] = text;
    return true;
  };

  // NAT gateways being deleted: their namespaces go, then the store hears.
  std::vector<const Row*> nats_gone;
  for (const auto* nat : plan.nats_going) {
    bool gone = true;
    for (const auto& a : nat->doc.at("NatGatewayAddresses").as_array()) {
      std::string ns = prefix + svc::get_string(a.as_object(), "NetworkInterfaceId");
      if (net::netns_exists(ns)) note(net::delete_netns(ns), ns);
      gone = gone && !net::netns_exists(ns);
    }
    if (gone) nats_gone.push_back(nat);
  }

  // What the store no longer has goes first (its links go with it).
  for (const auto& ns : net::list_netns(prefix))
    if (!plan.routers.count(ns) && !plan.enis.count(ns) && ns != plan.internet) {
      applied_.erase(ns);
      log->info("removing {}", ns);
      if (auto d = net::delete_netns(ns); !d.ok()) log->warn("{}", d.error().message);
    }

  // The internet: public service addresses, no route anywhere else.
  if (!plan.internet.empty() && (net::netns_exists(plan.internet) || fresh(plan.internet))) {
    once(plan.internet + "/setup", kServiceRange, [&]() -> Status {
      if (!sysctl(plan.internet, {"net.ipv4.ip_forward=1"})) return Error::internal("sysctl");
      (void)net::ip_batch_force(plan.internet, "addr del 198.18.0.0/24 dev lo\n");  // (pier 0.x's range)
      return net::ip_batch(plan.internet, fmt::format("addr replace {} dev lo\n", kServiceRange));
    });
  }

  for (auto& [ns, router] : plan.routers) {
    if (!net::netns_exists(ns) && !fresh(ns)) continue;
    if (!once(ns + "/sysctl", "forwarding", [&]() -> Status {
          if (!sysctl(ns, {"net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"}))
            return Error::internal("sysctl");
          return {};
        }))
      continue;
    // The resolver's address, on lo: local from every subnet (the router
    // answers ARP for it where a subnet holds it).
    once(ns + "/resolver", router.resolver, [&]() -> Status {
      std::string batch = "addr flush dev lo scope global\n";
      if (!router.resolver.empty()) batch += fmt::format("addr add {}/32 dev lo\n", router.resolver);
      return net::ip_batch_force(ns, batch);
    });
    auto have = net::links(ns);
    if (!note(have.ok() ? Status{} : Status(have.error()), ns)) continue;
    std::set<std::string> present(have->begin(), have->end());
    std::string batch;
    for (const auto& [name, b] : router.bridges)
      if (!present.count(name))
        batch += fmt::format("link add {0} type bridge\naddr add {1} dev {0}\nlink set {0} up\n", name, b.router_cidr());
    for (const auto& name : present)
      if (name.starts_with("pier-b") && !router.bridges.count(name)) batch += fmt::format("link del {}\n", name);
    // The internet gateway's link: made when attached, gone when detached.
    for (const auto& name : present)
      if (name.starts_with("pier-i") && name != router.igw_link) batch += fmt::format("link del {}\n", name);
    if (!batch.empty() && !note(net::ip_batch(ns, batch), ns)) {
      // Bridges made without their address are removed, to be made again.
      std::string undo;
      for (const auto& [name, b] : router.bridges)
        if (!present.count(name)) undo += fmt::format("link del {}\n", name);
      (void)net::ip_batch_force(ns, undo);
      continue;
    }
    if (!router.igw_link.empty() && !present.count(router.igw_link)) {
      // A new link: what referred to the old one must be made again.
      for (const auto& key : {ns + "/routing", ns + "/igw", plan.internet + "/" + ns}) applied_.erase(key);
      if (note(net::ip_batch("", fmt::format("link add {} netns {} type veth peer name {} netns {}\n", router.igw_link,
                                             ns, router.igw_peer, plan.internet)), ns)) {
        if (!note(net::ip_batch(ns, fmt::format("addr add {}/30 dev {}\nlink set {} up\n", kIgwRouterSide,
                                                router.igw_link, router.igw_link)), ns) ||
            !note(net::ip_batch(plan.internet, fmt::format("addr add {}/30 dev {}\nlink set {} up\n", kIgwInternetSide,
                                                           router.igw_peer, router.igw_peer)), plan.internet))
          (void)net::ip_batch_force(ns, fmt::format("link del {}\n", router.igw_link));  // both ends; made again next pass
      }
    }
    if (!router.igw_link.empty()) {
      once(ns + "/igw", igw_ruleset(router), [&] { return net::nft(ns, igw_ruleset(router)); });
      // The internet reaches the public addresses through this gateway.
      std::string routes = fmt::format("route flush dev {} proto boot\n", router.igw_peer);
      for (const auto& [pub, priv] : router.public_ips)
        routes += fmt::format("route replace {}/32 via {} dev {} onlink\n", pub, kIgwRouterSide, router.igw_peer);
      once(plan.internet + "/" + ns, routes, [&] { return net::ip_batch_force(plan.internet, routes); });
    }
  }

  // ENIs (and NAT gateways, which are ENIs that forward and translate).
  std::vector<const Row*> now_available, nats_ready;
  for (const auto& [ns, e] : plan.enis) {
    if (!net::netns_exists(ns)) {
      // Closed before it is wired: the groups' rules replace this table.
      if (!fresh(ns) || !note(net::nft(ns, net::sg_ruleset({}, {})), ns)) {
        (void)net::delete_netns(ns);
        continue;
      }
    }
    auto have = net::links(ns);
    if (!note(have.ok() ? Status{} : Status(have.error()), ns)) continue;
    bool wired = std::find(have->begin(), have->end(), "pier-eth0") != have->end();
    if (!wired) {
      // Both ends made straight in their namespaces; nothing touches pier's own.
      if (!note(net::ip_batch("", fmt::format("link add {} netns {} type veth peer name pier-eth0 netns {}\n",
                                              e.veth, e.router, ns)), ns))
        continue;
      // Half a wiring is undone (both ends go with pier-eth0), so that the
      // next pass makes it whole.
      if (!note(net::ip_batch(e.router, fmt::format("link set {} master {}\nlink set {} up\n", e.veth, e.bridge, e.veth)), ns) ||
          !note(net::ip_batch(ns, fmt::format("link set pier-eth0 address {}\naddr add {} dev pier-eth0\n"
                                              "link set pier-eth0 up\nroute add default via {}\n"
                                              "addr replace {}/32 dev lo\n",
                                              e.mac, e.address, e.gateway, kLinkLocal)), ns)) {
        (void)net::ip_batch_force(ns, "link del pier-eth0\n");
        continue;
      }
      applied_[ns + "/linklocal"] = kLinkLocal;  // (in the same batch)
    }
    if (!e.nat_gateway.empty()) {
      // Forwards what its subnet's routes send it, from its own address.
      std::string ip = e.address.substr(0, e.address.find('/'));
      std::string nat = fmt::format(
          "table ip pier_nat\ndelete table ip pier_nat\ntable ip pier_nat {{\n"
          "  chain post {{\n    type nat hook postrouting priority 100;\n"
          "    oifname \"pier-eth0\" ip saddr != {} masquerade\n  }}\n}}\n", ip);
      bool ok = once(ns + "/nat", nat, [&]() -> Status {
        if (!sysctl(ns, {"net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
                         "net.ipv4.conf.pier-eth0.send_redirects=0", "net.ipv4.conf.all.rp_filter=0"}))
          return Error::internal("sysctl");
        return net::nft(ns, nat);
      });
      if (ok)
        for (const auto& r : rows)
          if (r.id == e.nat_gateway && svc::get_string(r.doc, "State") == "pending") nats_ready.push_back(&r);
    } else {
      std::vector<net::SgRule> rules;
      if (const auto* gs = svc::get_array(e.row->doc, "Groups"))
        for (const auto& g : *gs) {
          auto it = plan.groups.find(svc::get_string(g.as_object(), "GroupId"));
          if (it == plan.groups.end()) continue;
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
      std::string ruleset = net::sg_ruleset(rules, plan.members, e.resolver);
      if (!once(ns, ruleset, [&] { return net::nft(ns, ruleset); })) continue;
      if (!once(ns + "/linklocal", kLinkLocal, [&] {
            return net::ip_batch(ns, fmt::format("addr replace {}/32 dev lo\n", kLinkLocal));
          }))
        continue;
    }
    if (svc::get_string(e.row->doc, "Status") == "pending") now_available.push_back(e.row);
  }

  // Routing last: it names the ENIs and links made above. Each pass replaces
  // pier's rules (prefs 1000…) and tables (100…) in one batch.
  for (auto& [ns, router] : plan.routers) {
    if (!net::netns_exists(ns)) continue;
    once(ns + "/routing", router.routing, [&]() -> Status {
      auto rules = net::run_in("", {"ip", "-n", ns, "rule", "show"});
      if (!rules.ok()) return rules.error();
      std::string clear;
      for (const auto& line : str::split(*rules, '\n')) {
        int pref = std::atoi(std::string(line).c_str());
        if (pref >= 1000 && pref < 2000) clear += fmt::format("rule del pref {}\n", pref);
      }
      for (int t = 100; t < 200; ++t) clear += fmt::format("route flush table {}\n", t);
      (void)net::ip_batch_force(ns, clear);
      // Going on past a line the kernel refuses, so that one bad route
      // does not take the rest of the VPC's routing with it.
      return net::ip_batch_force(ns, router.routing);
    });
  }

  // What pierd answers inside the namespaces.
  std::map<std::string, ListenerSpec> want;
  for (const auto& [ns, router] : plan.routers)
    if (router.vpc && !router.resolver.empty() && net::netns_exists(ns))
      want["dns/" + router.vpc->id] = ListenerSpec{ListenerSpec::Kind::kDns, ns, router.resolver, 53,
                                                   router.vpc->account, router.vpc->region, router.vpc->id,
                                                   router.vpc->id};
  std::set<std::string> wired;
  for (const auto* r : now_available) wired.insert(r->id);
  for (const auto& [ns, e] : plan.enis) {
    bool ready = wired.count(e.row->id) || svc::get_string(e.row->doc, "Status") != "pending";
    if (!ready || !e.nat_gateway.empty()) continue;
    const auto& r = *e.row;
    if (svc::get_string(r.doc, "InterfaceType") != "vpc_endpoint")
      want["meta/" + r.id] = ListenerSpec{ListenerSpec::Kind::kHttp, ns, kLinkLocal, 80, r.account, r.region, r.vpc_id, r.id};
    else if (!e.endpoint.empty())
      want["vpce/" + r.id] = ListenerSpec{ListenerSpec::Kind::kHttps, ns, e.address.substr(0, e.address.find('/')), 443,
                                          r.account, r.region, r.vpc_id, e.endpoint};
  }
  // Gateway endpoints: pierd in the router, on the service's public
  // addresses, which only the tables with the endpoint's route deliver there.
  for (const auto* ep : plan.gateway_endpoints) {
    std::string ns = prefix + ep->vpc_id;
    if (!plan.routers.count(ns) || !net::netns_exists(ns)) continue;
    const auto* svc_def = aws::find_endpoint_service(svc::get_string(ep->doc, "ServiceName"), ep->region);
    if (!svc_def) continue;
    // One listener per VPC and service (AWS allows two endpoints of a
    // service in a VPC, on different tables); the first endpoint owns it.
    std::string key = "gwe/" + ep->vpc_id + "/" + svc_def->name;
    if (want.count(key)) continue;
    want[key] = ListenerSpec{ListenerSpec::Kind::kHttps, ns, svc_def->public_address(ep->region), 443,
                             ep->account, ep->region, ep->vpc_id, ep->id};
  }
  if (!plan.internet.empty() && net::netns_exists(plan.internet))
    want["inet"] = ListenerSpec{ListenerSpec::Kind::kHttps, plan.internet, "0.0.0.0", 443, "", "", "", "internet"};
  std::set<std::string> up;
  if (listeners_) up = listeners_->apply(want);
  // Interface endpoints: available once every ENI answers; gone once none does.
  std::vector<const Row*> endpoints_ready, endpoints_gone;
  for (const auto* ep : plan.endpoints) {
    std::string state = svc::get_string(ep->doc, "State");
    bool all = listeners_ != nullptr, none = true;
    if (const auto* ids = svc::get_array(ep->doc, "NetworkInterfaceIds"))
      for (const auto& id : *ids) {
        bool is_up = up.count("vpce/" + std::string(id.as_string())) > 0;
        all = all && is_up;
        none = none && !is_up;
      }
    if (state == "pending" && all) endpoints_ready.push_back(ep);
    if (state == "deleting" && none) endpoints_gone.push_back(ep);
  }

  if (!now_available.empty() || !nats_ready.empty() || !nats_gone.empty() || !endpoints_ready.empty() ||
      !endpoints_gone.empty()) {
    auto w = store_.write([&](store::Db& db) -> Status {
      for (const auto* r : endpoints_ready)
        PIER_TRY(svc::ec2::finish_vpc_endpoint(db, r->account, r->region, r->id, false));
      for (const auto* r : endpoints_gone)
        PIER_TRY(svc::ec2::finish_vpc_endpoint(db, r->account, r->region, r->id, true));
      for (const auto* r : now_available) PIER_TRY(svc::ec2::finish_interface(db, r->account, r->region, r->id));
      for (const auto* r : nats_ready) PIER_TRY(svc::ec2::finish_nat_gateway(db, r->account, r->region, r->id, false));
      for (const auto* r : nats_gone) PIER_TRY(svc::ec2::finish_nat_gateway(db, r->account, r->region, r->id, true));
      return {};
    });
    note(w, "status");
  }
  return first_error;
}

}  // namespace pier::controllers

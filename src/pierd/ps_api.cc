#include "pierd/ps_api.h"

#include <fmt/format.h>

#include "services/ec2/ec2.h"
#include "services/ec2/objects.h"
#include "services/ecs/ecs.h"
#include "services/ecs/tasks.h"
#include "services/util.h"

namespace pier::pierd {

namespace json = boost::json;
namespace bhttp = boost::beast::http;
using svc::get_string;

json::object channel_path(store::Db& db, const std::string& account, const std::string& region,
                          const exec::ControlInfo& info) {
  json::object p{{"listener", info.listener}, {"source", info.source}, {"since", info.since}};
  constexpr std::string_view kVpce = "vpce/";
  if (info.listener.starts_with(kVpce)) {
    std::string eni = info.listener.substr(kVpce.size());
    p["kind"] = "endpoint";
    p["networkInterfaceId"] = eni;
    std::string endpoint, service, ip = info.local;
    if (auto e = svc::ec2::load_object(db, account, region, eni, "network-interface"); e.ok() && *e) {
      std::string desc = get_string(**e, "Description");
      if (auto at = desc.find("vpce-"); at != std::string::npos) endpoint = desc.substr(at);
      ip = get_string(**e, "PrivateIpAddress", ip);
    }
    if (!endpoint.empty())
      if (auto v = svc::ec2::load_object(db, account, region, endpoint, "vpc-endpoint"); v.ok() && *v)
        service = get_string(**v, "ServiceName");
    p["vpcEndpointId"] = endpoint;
    p["serviceName"] = service;
    p["text"] = fmt::format("interface endpoint {} ({} {})", endpoint.empty() ? "?" : endpoint, eni, ip);
    return p;
  }
  if (info.listener == "inet") {
    // The public endpoint saw the source after translation: a NAT gateway's
    // EIP, or the task's own public IP.
    svc::ec2::Scope s{account, region};
    if (auto eips = svc::ec2::load_all(db, s, "elastic-ip"); eips.ok())
      for (const auto& e : *eips) {
        if (get_string(e.doc, "PublicIp") != info.source) continue;
        if (auto nat = get_string(e.doc, "_NatGatewayId"); !nat.empty()) {
          p["kind"] = "nat";
          p["natGatewayId"] = nat;
          p["publicIp"] = info.source;
          p["text"] = fmt::format("NAT gateway {} (EIP {})", nat, info.source);
          return p;
        }
        p["kind"] = "public";
        p["publicIp"] = info.source;
        p["text"] = fmt::format("public IP {} ({})", info.source, get_string(e.doc, "NetworkInterfaceId"));
        return p;
      }
    p["kind"] = "public";
    p["publicIp"] = info.source;
    p["text"] = fmt::format("the internet, from {}", info.source);
    return p;
  }
  if (info.listener.starts_with("gwe/")) {
    p["kind"] = "gateway-endpoint";
    p["text"] = fmt::format("gateway endpoint ({})", info.listener.substr(4));
    return p;
  }
  p["kind"] = "host";
  p["text"] = fmt::format("pierd's own port, from {} (not through the task's network)", info.source);
  return p;
}

void add_ps_route(aws::Dispatcher& d, store::Store& store, exec::Broker& broker) {
  d.add_signed({"pier", "GET", "/_pier/ps", "pier:ListTasks",
                [&store, &broker](aws::RequestContext& ctx, http::Request& req) -> Result<http::Response> {
    std::map<std::string, exec::ControlInfo> controls;
    for (auto& c : broker.controls()) controls[c.target] = c;
    PIER_ASSIGN(json::array tasks, store.read([&](store::Db& db) -> Result<json::array> {
      json::array out;
      PIER_ASSIGN(auto rows, svc::ecs::live_tasks(db));
      for (const auto& row : rows) {
        if (row.account != ctx.principal.account) continue;
        const auto& t = row.doc;
        std::string cluster = get_string(t, "clusterArn");
        cluster = cluster.substr(cluster.rfind('/') + 1);
        json::object o{{"region", row.region},
                       {"cluster", cluster},
                       {"taskArn", get_string(t, "taskArn")},
                       {"taskId", row.id},
                       {"group", get_string(t, "group")},
                       {"lastStatus", get_string(t, "lastStatus")},
                       {"desiredStatus", get_string(t, "desiredStatus")},
                       {"enableExecuteCommand", svc::get_bool(t, "enableExecuteCommand")}};
        if (const auto* a = svc::get_array(t, "attachments"); a && !a->empty() && a->at(0).is_object())
          if (const auto* det = svc::get_array(a->at(0).as_object(), "details"))
            for (const auto& kv : *det)
              if (kv.is_object()) {
                std::string n = get_string(kv.as_object(), "name");
                if (n == "subnetId" || n == "privateIPv4Address" || n == "networkInterfaceId")
                  o[n] = get_string(kv.as_object(), "value");
              }
        json::array containers;
        if (const auto* cs = svc::get_array(t, "containers"))
          for (const auto& cv : *cs) {
            const auto& c = cv.as_object();
            json::object co{{"name", get_string(c, "name")},
                            {"runtimeId", get_string(c, "runtimeId")},
                            {"lastStatus", get_string(c, "lastStatus")}};
            if (const auto* ma = svc::get_array(c, "managedAgents"); ma && !ma->empty() && ma->at(0).is_object()) {
              std::string target = svc::ecs::exec_target(get_string(t, "clusterArn"), get_string(t, "taskArn"),
                                                         get_string(c, "runtimeId"));
              co["agent"] = get_string(ma->at(0).as_object(), "lastStatus");
              co["target"] = target;
              auto it = controls.find(target);
              co["connected"] = it != controls.end();
              if (it != controls.end()) co["path"] = channel_path(db, row.account, row.region, it->second);
            }
            containers.push_back(std::move(co));
          }
        o["containers"] = std::move(containers);
        out.push_back(std::move(o));
      }
      return out;
    }));
    return http::make_response(req.version(), bhttp::status::ok, "application/json",
                               json::serialize(json::object{{"tasks", tasks}}));
  }});
}

}  // namespace pier::pierd

// `pier ps`: GET /_pier/ps (signed, signing name "pier", action
// pier:ListTasks) — every live task of the caller's account, and for each
// container with ECS Exec on, whether its agent holds a control channel and
// through what: an interface endpoint's ENI, a NAT gateway (its EIP is the
// source the public endpoint saw), a public IP, or nothing.
#pragma once

#include "aws/dispatcher.h"
#include "exec/broker.h"
#include "store/store.h"

namespace pier::pierd {

void add_ps_route(aws::Dispatcher& d, store::Store& store, exec::Broker& broker);

// Where a control channel came in, in words and as fields ("kind": endpoint,
// nat, public, host), from the listener and source the broker recorded.
boost::json::object channel_path(store::Db& db, const std::string& account, const std::string& region,
                                 const exec::ControlInfo& info);

}  // namespace pier::pierd

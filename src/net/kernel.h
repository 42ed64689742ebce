// The kernel as pier's network controller drives it: named network
// namespaces under /run/netns, and batches of `ip` and `nft` commands run
// inside one of them (one process per batch, not per object). Every object
// pier makes carries the prefix "pier-" and its instance's tag.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"

namespace pier::net {

// The instance tag: 4 hex digits of the SHA-256 of the (absolute) home, so
// that two pierds on one host never touch each other's objects.
std::string instance_tag(const std::string& home);
// "pier-TAG-": what every namespace of that instance starts with.
std::string netns_prefix(const std::string& tag);

// Names under /run/netns starting with prefix, sorted.
std::vector<std::string> list_netns(const std::string& prefix);
bool netns_exists(const std::string& name);
Status add_netns(const std::string& name);
Status delete_netns(const std::string& name);

// `ip [-n NS] -batch`: one command per line; stops at the first failure.
Status ip_batch(const std::string& netns, const std::string& commands);
// The same, going on past failing lines (for removals that may find nothing).
Status ip_batch_force(const std::string& netns, const std::string& commands);
// `nft -f -` inside NS: one script, applied as one transaction.
Status nft(const std::string& netns, const std::string& script);
// One command inside NS (empty: pier's own netns), its stdout.
Result<std::string> run_in(const std::string& netns, const std::vector<std::string>& argv);
// Interface names in NS (e.g. of type "bridge"; empty: all).
Result<std::vector<std::string>> links(const std::string& netns, const std::string& type = {});

}  // namespace pier::net

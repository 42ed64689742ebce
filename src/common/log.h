// Named spdlog loggers, one per layer, and the masking of secrets before they
// can reach a log line.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

namespace pier::log {

// Sets up the loggers (stderr, the given level: trace, debug, info, warn, error).
void init(std::string_view level);

std::shared_ptr<spdlog::logger> get(const std::string& layer);

// "AKIA…WXYZ": enough to tell keys apart, never enough to use one.
std::string mask(std::string_view secret);

}  // namespace pier::log

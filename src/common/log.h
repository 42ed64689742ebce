// Named spdlog loggers, one per layer.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

namespace pier::log {

// Sets up the loggers (stderr, the given level: trace, debug, info, warn, error).
void init(std::string_view level);

std::shared_ptr<spdlog::logger> get(const std::string& layer);

}  // namespace pier::log

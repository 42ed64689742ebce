#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <mutex>

namespace pier::log {
namespace {
std::mutex g_mu;
spdlog::level::level_enum g_level = spdlog::level::info;
}  // namespace

void init(std::string_view level) {
  std::lock_guard lock(g_mu);
  g_level = spdlog::level::from_str(std::string(level));
  spdlog::set_level(g_level);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l [%n] %v");
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(g_level); });
}

std::shared_ptr<spdlog::logger> get(const std::string& layer) {
  std::lock_guard lock(g_mu);
  if (auto l = spdlog::get(layer)) return l;
  // Plain (uncoloured) stderr: pierd's log goes to files and journals, and
  // the colour sink's per-line terminal checks cost time on every request.
  auto l = spdlog::stderr_logger_mt(layer);
  l->set_level(g_level);
  return l;
}

}  // namespace pier::log

#include "services/logs/logs.h"

namespace pier::svc::logs {

LogsService::LogsService(store::Store& store) : store_(store) {}

aws::ServiceDef LogsService::definition() {
  aws::ServiceDef def;
  def.model_id = "logs";
  return def;
}

Status append_events(store::Db&, const std::string&, const std::string&, const std::string&,
                     const std::string&, const std::vector<Event>&, bool) {
  return Error::internal("logs: not built yet");
}

Result<bool> group_exists(store::Db&, const std::string&, const std::string&, const std::string&) {
  return false;
}

}  // namespace pier::svc::logs

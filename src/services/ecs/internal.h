// What the ECS action files share: AWS's error shapes, cluster and task
// definition references, List paging. Internal to services/ecs.
#pragma once

#include <boost/json.hpp>

#include <optional>
#include <string>

#include "aws/dispatcher.h"
#include "store/db.h"

namespace pier::svc::ecs::internal {

namespace json = boost::json;

Error client(std::string msg);   // ClientException
Error invalid(std::string msg);  // InvalidParameterException
Error cluster_not_found();

bool valid_name(std::string_view s);
std::string cluster_arn(const aws::RequestContext& ctx, std::string_view name);
// A cluster reference — a name or an ARN — as the cluster's name.
Result<std::string> cluster_name(const aws::RequestContext& ctx, std::string_view ref);
Result<std::optional<json::object>> load_cluster(store::Db& db, const aws::RequestContext& ctx,
                                                 const std::string& name);
Result<json::object> require_active_cluster(store::Db& db, const aws::RequestContext& ctx,
                                            const std::string& ref);
Status check_tags(const json::object& in);

struct TdRef {
  std::string family;
  int64_t revision = 0;  // 0: the latest ACTIVE revision
};
Result<TdRef> parse_td_ref(const aws::RequestContext& ctx, std::string_view ref, bool need_revision);
Result<std::optional<json::object>> load_td(store::Db& db, const aws::RequestContext& ctx,
                                            const TdRef& r);

// A page of a List call: maxResults (1–100, default 100) and nextToken.
struct Page {
  int64_t max = 100;
  size_t offset = 0;
};
Result<Page> read_page(const json::object& in);
// Steps a statement bound with LIMIT page.max + 1 and OFFSET page.offset and
// returns {key: [first column…], nextToken when there is more}.
Result<json::object> collect_page(store::Stmt* st, const Page& page, std::string_view key);

}  // namespace pier::svc::ecs::internal

// ECS services through the ECS service definition (its handlers, as the
// dispatcher calls them), with a VPC and subnet made through EC2's, and the
// scheduler driven by hand: the tests play the task controller by setting
// lastStatus on the task records.
#include "services/ecs/services.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "services/ec2/ec2.h"
#include "services/ecs/ecs.h"
#include "services/ecs/tasks.h"
#include "services/util.h"

namespace pier::svc::ecs {
namespace {

namespace json = boost::json;

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pier-svc-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    if (p) path = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

const aws::Action* find(const aws::ServiceDef& def, std::string_view name) {
  for (const auto& a : def.actions)
    if (a.name == name) return &a;
  return nullptr;
}

class EcsServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::Store::open(dir_.path);
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
    ecs_ = std::make_unique<EcsService>(*store_);
    ec2_ = std::make_unique<ec2::Ec2Service>(*store_);
    ecs_def_ = ecs_->definition();
    ec2_def_ = ec2_->definition();
    auto vpc = ec2("CreateVpc", {{"CidrBlock", "10.1.0.0/16"}});
    ASSERT_TRUE(vpc.ok()) << vpc.error().message;
    vpc_ = get_string(vpc->at("Vpc").as_object(), "VpcId");
    auto sn = ec2("CreateSubnet", {{"VpcId", vpc_}, {"CidrBlock", "10.1.1.0/24"}});
    ASSERT_TRUE(sn.ok()) << sn.error().message;
    subnet_ = get_string(sn->at("Subnet").as_object(), "SubnetId");
    ASSERT_TRUE(ecs("CreateCluster", {{"clusterName", "c1"}}).ok());
    ASSERT_TRUE(register_td("web").ok());
  }

  aws::RequestContext ctx(const std::string& action) {
    aws::RequestContext c;
    c.request_id = "test";
    c.region = "us-east-1";
    c.action = action;
    c.principal.account = "123456789012";
    c.principal.arn = "arn:aws:iam::123456789012:root";
    c.principal.user_id = "123456789012";
    c.now = now_;
    return c;
  }
  Result<json::object> call(const aws::ServiceDef& def, const std::string& action, json::object in) {
    const auto* a = find(def, action);
    if (!a || !a->handler) return Error::internal("no action " + action);
    auto c = ctx(action);
    return a->handler(c, in);
  }
  Result<json::object> ecs(const std::string& action, json::object in) { return call(ecs_def_, action, std::move(in)); }
  Result<json::object> ec2(const std::string& action, json::object in) { return call(ec2_def_, action, std::move(in)); }

  Result<json::object> register_td(const std::string& family, const std::string& image = "nginx") {
    return ecs("RegisterTaskDefinition",
               {{"family", family},
                {"networkMode", "awsvpc"},
                {"requiresCompatibilities", json::array{"FARGATE"}},
                {"cpu", "256"},
                {"memory", "512"},
                {"containerDefinitions", json::array{json::object{{"name", "app"}, {"image", image}}}}});
  }
  json::object network() {
    return {{"awsvpcConfiguration", json::object{{"subnets", json::array{json::string(subnet_)}}}}};
  }
  Result<json::object> create(const std::string& name, int64_t desired, json::object extra = {}) {
    json::object in{{"cluster", "c1"},
                    {"serviceName", name},
                    {"taskDefinition", "web"},
                    {"desiredCount", desired},
                    {"launchType", "FARGATE"},
                    {"networkConfiguration", network()}};
    for (const auto& [k, v] : extra) in[k] = v;
    return ecs("CreateService", std::move(in));
  }
  json::object describe(const std::string& name) {
    auto r = ecs("DescribeServices", {{"cluster", "c1"}, {"services", json::array{json::string(name)}}});
    EXPECT_TRUE(r.ok());
    if (!r.ok() || r->at("services").as_array().empty()) return {};
    return r->at("services").as_array()[0].as_object();
  }
  bool schedule() {
    auto r = schedule_services(*store_, now_);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() && *r;
  }

  // The service's tasks, oldest first.
  std::vector<TaskRow> tasks(const std::string& service) {
    auto r = store_->read([&](store::Db& db) -> Result<std::vector<TaskRow>> {
      PIER_ASSIGN(auto* st, db.prepare("SELECT id FROM ecs_tasks WHERE service=? ORDER BY created, id"));
      st->args(service);
      PIER_ASSIGN(auto ids, st->strings());
      std::vector<TaskRow> out;
      for (const auto& id : ids) {
        PIER_ASSIGN(auto t, load_task(db, "123456789012", "us-east-1", id));
        out.push_back(std::move(*t));
      }
      return out;
    });
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : std::vector<TaskRow>{};
  }
  std::vector<TaskRow> live(const std::string& service, const std::string& deployment = "") {
    std::vector<TaskRow> out;
    for (auto& t : tasks(service))
      if (get_string(t.doc, "desiredStatus") == "RUNNING" && get_string(t.doc, "lastStatus") != "STOPPED" &&
          (deployment.empty() || get_string(t.doc, "startedBy") == deployment))
        out.push_back(std::move(t));
    return out;
  }

  // Plays the task controller for one task.
  void set_status(const TaskRow& t, const std::string& status, const std::string& stop_code = "") {
    auto r = store_->write([&](store::Db& db) -> Status {
      PIER_ASSIGN(auto row, load_task(db, t.account, t.region, t.id));
      auto& d = row->doc;
      d["lastStatus"] = status;
      if (status == "RUNNING") d["startedAt"] = now_;
      if (status == "STOPPED") {
        d["desiredStatus"] = "STOPPED";
        d["stoppedAt"] = now_;
        if (!stop_code.empty()) d["stopCode"] = stop_code;
      }
      return save_task(db, *row);
    });
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  // Every task not yet running runs; every task asked to stop stops.
  void settle(const std::string& service, bool run = true) {
    for (const auto& t : tasks(service)) {
      std::string last = get_string(t.doc, "lastStatus"), desired = get_string(t.doc, "desiredStatus");
      if (last == "STOPPED") continue;
      if (desired == "STOPPED") set_status(t, "STOPPED");
      else if (run && last != "RUNNING") set_status(t, "RUNNING");
    }
  }
  json::object load_stopped(const std::string& id) {
    for (auto& t : tasks("api"))
      if (t.id == id) return t.doc;
    return {};
  }
  static bool has_event(const json::object& svc, const std::string& text) {
    for (const auto& e : svc.at("events").as_array())
      if (get_string(e.as_object(), "message").find(text) != std::string::npos) return true;
    return false;
  }
  static std::string primary_id(const json::object& svc) {
    for (const auto& d : svc.at("deployments").as_array())
      if (get_string(d.as_object(), "status") == "PRIMARY") return get_string(d.as_object(), "id");
    return "";
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<EcsService> ecs_;
  std::unique_ptr<ec2::Ec2Service> ec2_;
  aws::ServiceDef ecs_def_, ec2_def_;
  std::string vpc_, subnet_;
  double now_ = 1700000000;
};

TEST_F(EcsServicesTest, EcsServicesCreateReturnsTheServiceAndStartsTasks) {
  auto r = create("api", 2, {{"tags", json::array{json::object{{"key", "team"}, {"value", "a"}}}}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& s = r->at("service").as_object();
  EXPECT_EQ(get_string(s, "serviceArn"), "arn:aws:ecs:us-east-1:123456789012:service/c1/api");
  EXPECT_EQ(get_string(s, "clusterArn"), "arn:aws:ecs:us-east-1:123456789012:cluster/c1");
  EXPECT_EQ(get_string(s, "status"), "ACTIVE");
  EXPECT_EQ(get_string(s, "launchType"), "FARGATE");
  EXPECT_EQ(get_string(s, "platformVersion"), "LATEST");
  EXPECT_EQ(get_string(s, "schedulingStrategy"), "REPLICA");
  EXPECT_EQ(get_string(s, "propagateTags"), "NONE");
  EXPECT_EQ(get_string(s, "taskDefinition"), "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1");
  EXPECT_EQ(get_int(s.at("deploymentConfiguration").as_object(), "maximumPercent"), 200);
  EXPECT_EQ(get_int(s.at("deploymentConfiguration").as_object(), "minimumHealthyPercent"), 100);
  EXPECT_EQ(get_string(s.at("deploymentController").as_object(), "type"), "ECS");
  EXPECT_EQ(get_string(s.at("networkConfiguration").at("awsvpcConfiguration").as_object(), "assignPublicIp"), "DISABLED");
  for (const auto& [k, v] : s) EXPECT_FALSE(k.starts_with("_")) << k;
  ASSERT_EQ(s.at("deployments").as_array().size(), 1u);
  const auto& d = s.at("deployments").as_array()[0].as_object();
  std::string id = get_string(d, "id");
  ASSERT_EQ(id.size(), 8u + 19u);
  EXPECT_TRUE(id.starts_with("ecs-svc/"));
  EXPECT_EQ(id.find_first_not_of("0123456789", 8), std::string::npos);
  EXPECT_EQ(get_string(d, "status"), "PRIMARY");
  EXPECT_EQ(get_string(d, "rolloutState"), "IN_PROGRESS");
  EXPECT_EQ(get_string(d, "rolloutStateReason"), "ECS deployment " + id + " in progress.");
  EXPECT_EQ(s.at("tags").as_array().size(), 1u);

  EXPECT_TRUE(schedule());
  auto ts = live("api");
  ASSERT_EQ(ts.size(), 2u);
  for (const auto& t : ts) {
    EXPECT_EQ(get_string(t.doc, "startedBy"), id);
    EXPECT_EQ(get_string(t.doc, "group"), "service:api");
    EXPECT_EQ(get_string(t.doc, "_Deployment"), id);
    EXPECT_EQ(get_string(t.doc, "lastStatus"), "PROVISIONING");
  }
  auto v = describe("api");
  EXPECT_EQ(get_int(v, "pendingCount"), 2);
  EXPECT_EQ(get_int(v, "runningCount"), 0);
  EXPECT_TRUE(has_event(v, "(service api) has started 2 tasks: (task "));
  EXPECT_TRUE(has_event(v, "(task " + ts[0].id + ")"));
  EXPECT_TRUE(has_event(v, "(task " + ts[1].id + ")"));
  EXPECT_FALSE(v.contains("tags"));  // only with include TAGS

  settle("api");
  now_ += 5;
  EXPECT_TRUE(schedule());
  v = describe("api");
  EXPECT_EQ(get_int(v, "runningCount"), 2);
  EXPECT_EQ(get_int(v, "pendingCount"), 0);
  const auto& d2 = v.at("deployments").as_array()[0].as_object();
  EXPECT_EQ(get_string(d2, "rolloutState"), "COMPLETED");
  EXPECT_EQ(get_string(d2, "rolloutStateReason"), "ECS deployment " + id + " completed.");
  EXPECT_EQ(get_string(v.at("events").as_array()[0].as_object(), "message"), "(service api) has reached a steady state.");
  EXPECT_TRUE(has_event(v, "(service api) (deployment " + id + ") deployment completed."));
  // Nothing to do: nothing written.
  size_t events = v.at("events").as_array().size();
  now_ += 1;
  EXPECT_FALSE(schedule());
  EXPECT_EQ(describe("api").at("events").as_array().size(), events);
  EXPECT_EQ(live("api").size(), 2u);

  // ListServices and DescribeServices with TAGS.
  auto l = ecs("ListServices", {{"cluster", "c1"}});
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->at("serviceArns").as_array().size(), 1u);
  EXPECT_EQ(l->at("serviceArns").as_array()[0].as_string(), "arn:aws:ecs:us-east-1:123456789012:service/c1/api");
  auto ds = ecs("DescribeServices", {{"cluster", "c1"},
                                     {"services", json::array{"arn:aws:ecs:us-east-1:123456789012:service/c1/api", "nope"}},
                                     {"include", json::array{"TAGS"}}});
  ASSERT_TRUE(ds.ok());
  ASSERT_EQ(ds->at("services").as_array().size(), 1u);
  EXPECT_EQ(ds->at("services").as_array()[0].at("tags").as_array().size(), 1u);
  ASSERT_EQ(ds->at("failures").as_array().size(), 1u);
  EXPECT_EQ(get_string(ds->at("failures").as_array()[0].as_object(), "arn"),
            "arn:aws:ecs:us-east-1:123456789012:service/c1/nope");
  EXPECT_EQ(get_string(ds->at("failures").as_array()[0].as_object(), "reason"), "MISSING");
}

TEST_F(EcsServicesTest, EcsServicesReplaceAStoppedTask) {
  ASSERT_TRUE(create("api", 2).ok());
  schedule();
  settle("api");
  now_ += 300;
  schedule();
  auto ts = live("api");
  ASSERT_EQ(ts.size(), 2u);
  // The controller saw the container exit after it had run a while.
  set_status(ts[0], "STOPPED", "EssentialContainerExited");
  now_ += 1;
  EXPECT_TRUE(schedule());
  auto after = live("api");
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].id, ts[1].id);
  EXPECT_NE(after[1].id, ts[0].id);
  auto v = describe("api");
  EXPECT_EQ(get_int(v, "runningCount"), 1);
  EXPECT_EQ(get_int(v, "pendingCount"), 1);
  EXPECT_TRUE(has_event(v, "has started 1 tasks: (task " + after[1].id + ")."));
  EXPECT_EQ(get_int(v.at("deployments").as_array()[0].as_object(), "failedTasks"), 0);
}

TEST_F(EcsServicesTest, EcsServicesScaleUpAndDown) {
  ASSERT_TRUE(create("api", 1).ok());
  schedule();
  settle("api");
  schedule();
  ASSERT_TRUE(ecs("UpdateService", {{"cluster", "c1"}, {"service", "api"}, {"desiredCount", 4}}).ok());
  EXPECT_EQ(describe("api").at("deployments").as_array().size(), 1u);  // desiredCount alone: no new deployment
  schedule();
  auto ts = live("api");
  ASSERT_EQ(ts.size(), 4u);
  settle("api");
  set_status(ts[3], "PENDING");  // one still on its way up
  schedule();
  ASSERT_TRUE(ecs("UpdateService", {{"cluster", "c1"}, {"service", "api"}, {"desiredCount", 2}}).ok());
  EXPECT_TRUE(schedule());
  auto left = live("api");
  ASSERT_EQ(left.size(), 2u);
  // The pending one went first, then the newest running one.
  for (const auto& t : left) EXPECT_TRUE(t.id == ts[0].id || t.id == ts[1].id) << t.id;
  auto stopped = load_stopped(ts[3].id);
  EXPECT_EQ(get_string(stopped, "stopCode"), "ServiceSchedulerInitiated");
  EXPECT_TRUE(get_string(stopped, "stoppedReason").starts_with("Scaling activity initiated by (deployment ecs-svc/"));
  auto v = describe("api");
  EXPECT_TRUE(has_event(v, "(service api) has stopped 1 running tasks: (task " + ts[2].id + ")."));
  settle("api");
  schedule();
  v = describe("api");
  EXPECT_EQ(get_int(v, "runningCount"), 2);
  EXPECT_EQ(get_int(v, "desiredCount"), 2);
  EXPECT_EQ(get_int(v.at("deployments").as_array()[0].as_object(), "desiredCount"), 2);
}

TEST_F(EcsServicesTest, EcsServicesRollANewTaskDefinitionWithinThePercents) {
  ASSERT_TRUE(create("api", 2).ok());
  schedule();
  settle("api");
  schedule();
  std::string first = primary_id(describe("api"));
  ASSERT_TRUE(register_td("web", "nginx:2").ok());
  auto u = ecs("UpdateService", {{"cluster", "c1"}, {"service", "api"}, {"taskDefinition", "web:2"}});
  ASSERT_TRUE(u.ok()) << u.error().message;
  const auto& us = u->at("service").as_object();
  ASSERT_EQ(us.at("deployments").as_array().size(), 2u);
  std::string second = primary_id(us);
  EXPECT_NE(first, second);
  EXPECT_EQ(get_string(us.at("deployments").as_array()[1].as_object(), "status"), "ACTIVE");
  EXPECT_EQ(get_string(us, "taskDefinition"), "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2");

  // max 200%: two new tasks start beside the old two; min 100%: no old one stops yet.
  schedule();
  EXPECT_EQ(live("api", second).size(), 2u);
  EXPECT_EQ(live("api", first).size(), 2u);
  for (const auto& t : live("api", second))
    EXPECT_EQ(get_string(t.doc, "taskDefinitionArn"), "arn:aws:ecs:us-east-1:123456789012:task-definition/web:2");
  schedule();
  EXPECT_EQ(live("api", first).size(), 2u);
  // One new task runs: one old one may go.
  set_status(live("api", second)[0], "RUNNING");
  schedule();
  EXPECT_EQ(live("api", first).size(), 1u);
  settle("api");
  schedule();
  EXPECT_EQ(live("api", first).size(), 0u);
  settle("api");
  schedule();
  auto v = describe("api");
  ASSERT_EQ(v.at("deployments").as_array().size(), 1u);
  EXPECT_EQ(primary_id(v), second);
  EXPECT_EQ(get_string(v.at("deployments").as_array()[0].as_object(), "rolloutState"), "COMPLETED");
  EXPECT_EQ(get_int(v, "runningCount"), 2);

  // min 50%, max 100%: one old task stops first, then its replacement starts.
  ASSERT_TRUE(ecs("UpdateService", {{"cluster", "c1"},
                                    {"service", "api"},
                                    {"forceNewDeployment", true},
                                    {"deploymentConfiguration",
                                     json::object{{"maximumPercent", 100}, {"minimumHealthyPercent", 50}}}})
                  .ok());
  std::string third = primary_id(describe("api"));
  EXPECT_NE(third, second);
  schedule();
  EXPECT_EQ(live("api", third).size(), 0u);
  EXPECT_EQ(live("api", second).size(), 1u);
  settle("api");
  schedule();
  EXPECT_EQ(live("api", third).size(), 1u);
  settle("api");
  schedule();
  EXPECT_EQ(live("api", second).size(), 0u);
  settle("api");
  schedule();
  settle("api");
  schedule();
  v = describe("api");
  EXPECT_EQ(live("api", third).size(), 2u);
  EXPECT_EQ(v.at("deployments").as_array().size(), 1u);
  EXPECT_EQ(get_int(v, "runningCount"), 2);
}

TEST_F(EcsServicesTest, EcsServicesDeleteDrainsThenInactive) {
  ASSERT_TRUE(create("api", 2).ok());
  schedule();
  settle("api");
  schedule();
  auto r = ecs("DeleteService", {{"cluster", "c1"}, {"service", "api"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "InvalidParameterException");
  EXPECT_EQ(r.error().message, "The service cannot be stopped while it is scaled above 0.");
  r = ecs("DeleteService", {{"cluster", "c1"}, {"service", "api"}, {"force", true}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(get_string(r->at("service").as_object(), "status"), "DRAINING");
  EXPECT_EQ(get_int(r->at("service").as_object(), "desiredCount"), 0);
  EXPECT_TRUE(live("api").empty());
  for (const auto& t : tasks("api")) EXPECT_EQ(get_string(t.doc, "stopCode"), "ServiceSchedulerInitiated");
  auto u = ecs("UpdateService", {{"cluster", "c1"}, {"service", "api"}, {"desiredCount", 1}});
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().code, "ServiceNotActiveException");
  EXPECT_EQ(u.error().message, "Service was not ACTIVE.");
  auto again = create("api", 1);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, "InvalidParameterException");
  schedule();
  EXPECT_EQ(get_string(describe("api"), "status"), "DRAINING");  // tasks still stopping
  settle("api");
  schedule();
  auto v = describe("api");
  EXPECT_EQ(get_string(v, "status"), "INACTIVE");
  EXPECT_EQ(get_int(v, "runningCount"), 0);
  auto l = ecs("ListServices", {{"cluster", "c1"}});
  ASSERT_TRUE(l.ok());
  EXPECT_TRUE(l->at("serviceArns").as_array().empty());
  EXPECT_FALSE(schedule());
  EXPECT_EQ(ecs("DeleteService", {{"cluster", "c1"}, {"service", "api"}}).error().code, "ServiceNotActiveException");
  // A new service of the name may be made again.
  auto c = create("api", 1);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(get_string(c->at("service").as_object(), "status"), "ACTIVE");
  // INACTIVE services are described for an hour, then gone.
  ASSERT_TRUE(ecs("DeleteService", {{"cluster", "c1"}, {"service", "api"}, {"force", true}}).ok());
  schedule();
  settle("api");
  schedule();
  EXPECT_EQ(get_string(describe("api"), "status"), "INACTIVE");
  now_ += 3601;
  schedule();
  auto gone = ecs("DescribeServices", {{"cluster", "c1"}, {"services", json::array{"api"}}});
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(gone->at("services").as_array().empty());
}

TEST_F(EcsServicesTest, EcsServicesBackOffAfterFailedLaunches) {
  ASSERT_TRUE(create("api", 1).ok());
  // Each launch fails before RUNNING. The first three are retried at once.
  for (int i = 0; i < 3; ++i) {
    schedule();
    auto ts = live("api");
    ASSERT_EQ(ts.size(), 1u) << i;
    set_status(ts[0], "STOPPED", "TaskFailedToStart");
    now_ += 1;
  }
  // The third failure throttles: 30 s, then 60 s, 120 s …
  schedule();
  EXPECT_TRUE(live("api").empty());
  auto v = describe("api");
  EXPECT_TRUE(has_event(v, "(service api) is unable to consistently start tasks successfully."));
  EXPECT_EQ(get_int(v.at("deployments").as_array()[0].as_object(), "failedTasks"), 3);
  now_ += 20;
  schedule();
  EXPECT_TRUE(live("api").empty());
  now_ += 10;
  schedule();
  auto ts = live("api");
  ASSERT_EQ(ts.size(), 1u);
  // This one runs, then exits after 10 s: still a failed launch.
  set_status(ts[0], "RUNNING");
  now_ += 10;
  set_status(ts[0], "STOPPED", "EssentialContainerExited");
  schedule();
  EXPECT_TRUE(live("api").empty());
  now_ += 59;
  schedule();
  EXPECT_TRUE(live("api").empty());
  now_ += 1;
  schedule();
  ts = live("api");
  ASSERT_EQ(ts.size(), 1u);
  // This one stays up: the counter resets.
  set_status(ts[0], "RUNNING");
  now_ += 61;
  schedule();
  set_status(ts[0], "STOPPED", "EssentialContainerExited");
  now_ += 1;
  schedule();
  EXPECT_EQ(live("api").size(), 1u);  // replaced at once
  // A user's StopTask is no failure.
  set_status(live("api")[0], "STOPPED", "UserInitiated");
  schedule();
  EXPECT_EQ(live("api").size(), 1u);
  EXPECT_EQ(get_int(describe("api").at("deployments").as_array()[0].as_object(), "failedTasks"), 4);
}

TEST_F(EcsServicesTest, EcsServicesLaunchFailuresBackOffToo) {
  ASSERT_TRUE(create("api", 1).ok());
  // The subnet goes away under the service (made possible by hand).
  auto r = store_->write([&](store::Db& db) -> Status {
    PIER_ASSIGN(auto* st, db.prepare("DELETE FROM ec2_objects WHERE id=?"));
    st->args(subnet_);
    return st->run();
  });
  if (!r.ok()) GTEST_SKIP() << "EC2 objects are not in ec2_objects: " << r.error().message;
  for (int i = 0; i < 3; ++i) {
    schedule();
    now_ += 1;
  }
  auto v = describe("api");
  EXPECT_TRUE(has_event(v, "(service api) failed to launch a task with (error "));
  EXPECT_TRUE(has_event(v, "is unable to consistently start tasks successfully."));
  size_t events = v.at("events").as_array().size();
  now_ += 10;
  EXPECT_FALSE(schedule());  // throttled: nothing tried, nothing written
  EXPECT_EQ(describe("api").at("events").as_array().size(), events);
  EXPECT_TRUE(live("api").empty());
}

TEST_F(EcsServicesTest, EcsServicesErrors) {
  ASSERT_TRUE(create("api", 1, {{"clientToken", "tok"}}).ok());
  auto same = create("api", 1, {{"clientToken", "tok"}});
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(get_string(same->at("service").as_object(), "serviceName"), "api");
  auto dup = create("api", 1);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, "InvalidParameterException");
  EXPECT_EQ(dup.error().message, "Creation of service was not idempotent.");

  auto nonet = ecs("CreateService", {{"cluster", "c1"}, {"serviceName", "b"}, {"taskDefinition", "web"},
                                     {"desiredCount", 1}, {"launchType", "FARGATE"}});
  ASSERT_FALSE(nonet.ok());
  EXPECT_EQ(nonet.error().message, "Network Configuration must be provided when networkMode 'awsvpc' is specified.");

  auto badnet = create("b", 1, {{"networkConfiguration",
                                 json::object{{"awsvpcConfiguration",
                                               json::object{{"subnets", json::array{"subnet-0000000000000000f"}}}}}}});
  ASSERT_FALSE(badnet.ok());
  EXPECT_EQ(badnet.error().code, "InvalidParameterException");
  EXPECT_NE(badnet.error().message.find("subnet-0000000000000000f"), std::string::npos);

  auto badgroup = create("b", 1, {{"networkConfiguration",
                                   json::object{{"awsvpcConfiguration",
                                                 json::object{{"subnets", json::array{json::string(subnet_)}},
                                                              {"securityGroups", json::array{"sg-0000000000000000f"}}}}}}});
  ASSERT_FALSE(badgroup.ok());
  EXPECT_NE(badgroup.error().message.find("sg-0000000000000000f"), std::string::npos);

  auto notd = create("b", 1, {{"taskDefinition", "nope"}});
  ASSERT_FALSE(notd.ok());
  EXPECT_EQ(notd.error().code, "ClientException");

  auto nocluster = create("b", 1, {{"cluster", "nope"}});
  ASSERT_FALSE(nocluster.ok());
  EXPECT_EQ(nocluster.error().code, "ClusterNotFoundException");

  auto nocount = ecs("CreateService", {{"cluster", "c1"}, {"serviceName", "b"}, {"taskDefinition", "web"},
                                       {"launchType", "FARGATE"}, {"networkConfiguration", network()}});
  ASSERT_FALSE(nocount.ok());
  EXPECT_EQ(nocount.error().code, "InvalidParameterException");

  auto both = create("b", 1, {{"capacityProviderStrategy",
                               json::array{json::object{{"capacityProvider", "FARGATE_SPOT"}, {"weight", 1}}}}});
  ASSERT_FALSE(both.ok());
  auto spot = ecs("CreateService", {{"cluster", "c1"}, {"serviceName", "spot"}, {"taskDefinition", "web"},
                                    {"desiredCount", 0}, {"networkConfiguration", network()},
                                    {"capacityProviderStrategy",
                                     json::array{json::object{{"capacityProvider", "FARGATE_SPOT"}, {"weight", 1}}}}});
  ASSERT_TRUE(spot.ok()) << spot.error().message;
  EXPECT_FALSE(spot->at("service").as_object().contains("launchType"));
  auto fargate_only = ecs("ListServices", {{"cluster", "c1"}, {"launchType", "FARGATE"}});
  ASSERT_TRUE(fargate_only.ok());
  EXPECT_EQ(fargate_only->at("serviceArns").as_array().size(), 1u);
  auto page = ecs("ListServices", {{"cluster", "c1"}, {"maxResults", 1}});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->at("serviceArns").as_array().size(), 1u);
  ASSERT_TRUE(page->contains("nextToken"));
  auto page2 = ecs("ListServices", {{"cluster", "c1"}, {"maxResults", 1}, {"nextToken", page->at("nextToken")}});
  ASSERT_TRUE(page2.ok());
  EXPECT_EQ(page2->at("serviceArns").as_array().size(), 1u);
  EXPECT_FALSE(page2->contains("nextToken"));

  auto missing = ecs("UpdateService", {{"cluster", "c1"}, {"service", "nope"}, {"desiredCount", 1}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, "ServiceNotFoundException");
  EXPECT_EQ(missing.error().message, "Service not found.");
  EXPECT_EQ(ecs("DeleteService", {{"cluster", "c1"}, {"service", "nope"}}).error().code, "ServiceNotFoundException");
  auto other = ecs("UpdateService", {{"cluster", "c1"},
                                     {"service", "arn:aws:ecs:us-east-1:123456789012:service/other/api"},
                                     {"desiredCount", 1}});
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, "ServiceNotFoundException");

  // Changing exec makes a new deployment; desiredCount alone does not.
  auto ex = ecs("UpdateService", {{"cluster", "c1"}, {"service", "api"}, {"enableExecuteCommand", true}});
  ASSERT_TRUE(ex.ok());
  EXPECT_EQ(ex->at("service").at("deployments").as_array().size(), 2u);
  EXPECT_TRUE(get_bool(ex->at("service").as_object(), "enableExecuteCommand"));
  schedule();
  for (const auto& t : live("api", primary_id(ex->at("service").as_object())))
    EXPECT_TRUE(get_bool(t.doc, "enableExecuteCommand"));
  auto badcfg = ecs("UpdateService", {{"cluster", "c1"}, {"service", "api"},
                                      {"deploymentConfiguration", json::object{{"maximumPercent", 50}}}});
  EXPECT_FALSE(badcfg.ok());

  auto many = json::array();
  for (int i = 0; i < 11; ++i) many.push_back(json::string("s" + std::to_string(i)));
  EXPECT_FALSE(ecs("DescribeServices", {{"cluster", "c1"}, {"services", many}}).ok());
}

}  // namespace
}  // namespace pier::svc::ecs

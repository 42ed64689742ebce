// The services pierd builds, for the files of pierd that need more than the
// dispatcher (the task endpoints). Internal to pierd.
#pragma once

#include "aws/dispatcher.h"
#include "exec/broker.h"
#include "services/ec2/ec2.h"
#include "services/ecs/ecs.h"
#include "services/iam/iam.h"
#include "services/logs/logs.h"
#include "services/ssm/journal.h"
#include "services/ssm/ssm.h"
#include "services/ssm/transcript.h"
#include "services/sts/sts.h"

namespace pier::pierd {

struct Builtins {
  Builtins(store::Store& store, const std::string& model_dir, time::Clock clock,
           std::string public_url, std::function<void()> on_network_change)
      : store(store),
        journal(store),
        transcripts(store),
        broker(std::move(public_url), std::chrono::seconds(60), &journal),
        iam(store, clock, svc::iam::Config{}),
        identities(store, iam),
        sts(store, iam, clock),
        ecs(store, on_network_change, &broker),
        logs(store),
        ec2(store, std::move(on_network_change)),
        ssm(broker),
        dispatcher(model_dir, &identities, clock) {
    broker.set_transcript_sink(&transcripts);
  }
  store::Store& store;
  svc::ssm::StoreJournal journal;
  svc::ssm::StoreTranscripts transcripts;  // before the broker, which writes to it
  exec::Broker broker;  // before the services: they hold references to it
  svc::iam::IamService iam;
  svc::iam::Identities identities;
  svc::sts::StsService sts;
  svc::ecs::EcsService ecs;
  svc::logs::LogsService logs;
  svc::ec2::Ec2Service ec2;
  svc::ssm::SsmService ssm;
  aws::Dispatcher dispatcher;
};

}  // namespace pier::pierd

#include "client/resolve.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <atomic>

#include "common/strings.h"

namespace pier::client {
namespace {

namespace asio = boost::asio;
using udp = asio::ip::udp;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr uint16_t kA = 1, kCname = 5, kAaaa = 28;

struct Record {
  uint16_t type;
  std::string data;  // an address, or the CNAME target
};

// A tiny authoritative-looking DNS server on 127.0.0.1 (random port), run on
// the test's own io_context: the resolver must not block it, or nothing answers.
class FakeDns {
 public:
  explicit FakeDns(asio::io_context& ioc) : sock_(ioc, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(ioc, serve(), asio::detached);
  }
  std::string servers() const { return fmt_server(sock_.local_endpoint().port()); }
  static std::string fmt_server(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

  std::map<std::string, std::vector<Record>> zone;
  std::set<std::string> silent;                           // never answered
  std::map<std::string, std::chrono::milliseconds> delay;  // answered late
  std::vector<std::string> asked;                          // "name/type", in order

 private:
  static void put16(std::string& b, uint16_t v) {
    b += static_cast<char>(v >> 8);
    b += static_cast<char>(v & 0xff);
  }
  static void put_name(std::string& b, const std::string& name) {
    for (auto label : str::split(name, '.')) {
      if (label.empty()) continue;
      b += static_cast<char>(label.size());
      b += label;
    }
    b += '\0';
  }
  // Answers for (name, type), following CNAMEs as a recursive server would.
  std::optional<std::string> answer(const std::string& query, uint16_t qtype, uint16_t id, int& count) {
    std::string rrs;
    std::string name = query;
    bool known = false;
    for (int hops = 0; hops < 8; ++hops) {
      auto it = zone.find(name);
      if (it == zone.end()) break;
      known = true;
      std::string next;
      for (const auto& r : it->second) {
        if (r.type != qtype && r.type != kCname) continue;
        std::string rdata;
        if (r.type == kCname) {
          put_name(rdata, r.data);
          next = r.data;
        } else if (r.type == kA) {
          auto b = asio::ip::make_address_v4(r.data).to_bytes();
          rdata.assign(b.begin(), b.end());
        } else {
          auto b = asio::ip::make_address_v6(r.data).to_bytes();
          rdata.assign(b.begin(), b.end());
        }
        put_name(rrs, name);
        put16(rrs, r.type);
        put16(rrs, 1);
        put16(rrs, 0);
        put16(rrs, 60);  // TTL
        put16(rrs, static_cast<uint16_t>(rdata.size()));
        rrs += rdata;
        ++count;
      }
      if (next.empty()) break;
      name = next;
    }
    (void)id;
    if (!known) return std::nullopt;
    return rrs;
  }

  asio::awaitable<void> serve() {
    for (;;) {
      std::array<char, 1500> buf;
      udp::endpoint from;
      auto [ec, n] = co_await sock_.async_receive_from(asio::buffer(buf), from, kTuple);
      if (ec) co_return;
      std::string q(buf.data(), n);
      if (q.size() < 17) continue;
      // The question: labels from offset 12, then QTYPE and QCLASS.
      size_t p = 12;
      std::string name;
      while (p < q.size() && q[p] != 0) {
        size_t len = static_cast<unsigned char>(q[p]);
        if (!name.empty()) name += '.';
        name += q.substr(p + 1, len);
        p += len + 1;
      }
      if (p + 5 > q.size()) continue;
      name = str::lower(name);
      uint16_t qtype = static_cast<uint16_t>((static_cast<unsigned char>(q[p + 1]) << 8) | static_cast<unsigned char>(q[p + 2]));
      std::string question = q.substr(12, p + 5 - 12);
      asked.push_back(name + "/" + (qtype == kA ? "A" : qtype == kAaaa ? "AAAA" : std::to_string(qtype)));
      if (silent.count(name)) continue;
      uint16_t id = static_cast<uint16_t>((static_cast<unsigned char>(q[0]) << 8) | static_cast<unsigned char>(q[1]));
      int count = 0;
      auto rrs = answer(name, qtype, id, count);
      std::string r;
      put16(r, id);
      put16(r, static_cast<uint16_t>(0x8180 | (rrs ? 0 : 3)));  // QR RD RA, NOERROR or NXDOMAIN
      put16(r, 1);
      put16(r, static_cast<uint16_t>(count));
      put16(r, 0);
      put16(r, 0);
      r += question;
      if (rrs) r += *rrs;
      if (auto d = delay.find(name); d != delay.end()) {
        // Late, without holding up the answers to other queries.
        asio::co_spawn(sock_.get_executor(), [this, r, from, wait = d->second]() -> asio::awaitable<void> {
          asio::steady_timer t(co_await asio::this_coro::executor, wait);
          co_await t.async_wait(kTuple);
          co_await sock_.async_send_to(asio::buffer(r), from, kTuple);
        }, asio::detached);
        continue;
      }
      co_await sock_.async_send_to(asio::buffer(r), from, kTuple);
    }
  }

  udp::socket sock_;
};

// Runs one coroutine to completion on ioc (the fake server keeps running).
template <class T>
T run(asio::io_context& ioc, asio::awaitable<T> a) {
  std::optional<T> out;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    out.emplace(co_await std::move(a));
    ioc.stop();
  }, [](std::exception_ptr e) { if (e) std::rethrow_exception(e); });
  ioc.restart();
  ioc.run_for(20s);
  EXPECT_TRUE(out.has_value()) << "the coroutine did not finish";
  if (!out) return T(Error::internal("did not finish"));
  return std::move(*out);
}

struct TempFile {
  explicit TempFile(const std::string& text) {
    char tmpl[] = "/tmp/pier-resolve-XXXXXX";
    int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    close(fd);
    path = tmpl;
    std::ofstream(path) << text;
  }
  ~TempFile() { std::remove(path.c_str()); }
  std::string path;
};

class Resolve : public ::testing::Test {
 protected:
  Resolve() : dns(ioc), empty_conf("") , no_hosts("") {
    dns.zone["a.test"] = {{kA, "10.1.2.3"}, {kA, "10.1.2.4"}};
    dns.zone["dual.test"] = {{kAaaa, "fd00::1"}, {kA, "10.0.0.1"}};
    dns.zone["v6only.test"] = {{kAaaa, "fd00::2"}};
    dns.zone["alias.test"] = {{kCname, "mid.test"}};
    dns.zone["mid.test"] = {{kCname, "real.test"}};
    dns.zone["real.test"] = {{kA, "10.9.9.9"}, {kAaaa, "fd00::9"}};
    dns.zone["nodata.test"] = {};
    dns.zone["web.corp.test"] = {{kA, "10.5.5.5"}};
    dns.zone["slow.test"] = {{kA, "10.6.6.6"}};
    dns.zone["late.test"] = {{kA, "10.7.7.7"}};
    dns.silent.insert("slow.test");
    dns.delay["late.test"] = 300ms;
    opts.servers = dns.servers();
    opts.resolv_conf = empty_conf.path;  // no search list from the machine's resolv.conf
    opts.hosts_file = no_hosts.path;
    opts.timeout = 3000ms;
  }

  Result<std::vector<tcp::endpoint>> lookup(const std::string& host, uint16_t port = 443) {
    return run(ioc, resolve(host, port, opts));
  }
  static std::vector<std::string> strs(const std::vector<tcp::endpoint>& eps) {
    std::vector<std::string> out;
    for (const auto& e : eps) out.push_back((e.address().is_v6() ? "[" + e.address().to_string() + "]" : e.address().to_string()) +
                                            ":" + std::to_string(e.port()));
    return out;
  }

  asio::io_context ioc{1};
  FakeDns dns;
  TempFile empty_conf, no_hosts;
  ResolverOptions opts;
};

TEST_F(Resolve, LiteralAddressesNeedNoDns) {
  auto v4 = lookup("192.0.2.7", 80);
  ASSERT_TRUE(v4.ok()) << v4.error().message;
  EXPECT_EQ(strs(*v4), std::vector<std::string>{"192.0.2.7:80"});
  auto v6 = lookup("[::1]", 8080);
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(strs(*v6), std::vector<std::string>{"[::1]:8080"});
  auto bare6 = lookup("fd00::5", 1);
  ASSERT_TRUE(bare6.ok());
  EXPECT_EQ(strs(*bare6), std::vector<std::string>{"[fd00::5]:1"});
  EXPECT_TRUE(dns.asked.empty());
}

TEST_F(Resolve, ARecords) {
  auto r = lookup("a.test");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(strs(*r), (std::vector<std::string>{"10.1.2.3:443", "10.1.2.4:443"}));
  EXPECT_NE(std::find(dns.asked.begin(), dns.asked.end(), "a.test/A"), dns.asked.end());
  EXPECT_NE(std::find(dns.asked.begin(), dns.asked.end(), "a.test/AAAA"), dns.asked.end());
}

TEST_F(Resolve, Ipv4FirstThenIpv6) {
  auto r = lookup("dual.test", 53);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(strs(*r), (std::vector<std::string>{"10.0.0.1:53", "[fd00::1]:53"}));
  auto v6 = lookup("v6only.test", 53);
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(strs(*v6), std::vector<std::string>{"[fd00::2]:53"});
}

TEST_F(Resolve, FollowsCnameChains) {
  auto r = lookup("ALIAS.test", 80);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(strs(*r), (std::vector<std::string>{"10.9.9.9:80", "[fd00::9]:80"}));
}

TEST_F(Resolve, NxdomainIsNotFoundAndNamesTheHost) {
  auto r = lookup("missing.test");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kNotFound);
  EXPECT_NE(r.error().message.find("missing.test"), std::string::npos) << r.error().message;
}

TEST_F(Resolve, NoAddressIsNotFound) {
  auto r = lookup("nodata.test");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kNotFound);
  EXPECT_NE(r.error().message.find("nodata.test"), std::string::npos) << r.error().message;
}

TEST_F(Resolve, TimeoutIsUnavailable) {
  opts.timeout = 400ms;
  auto t0 = std::chrono::steady_clock::now();
  auto r = lookup("slow.test");
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kUnavailable);
  EXPECT_NE(r.error().message.find("slow.test"), std::string::npos) << r.error().message;
  EXPECT_GE(took, 350ms);
  EXPECT_LT(took, 2000ms);
}

TEST_F(Resolve, DeadNameserverIsUnavailable) {
  // A bound UDP socket that never reads: queries go nowhere.
  udp::socket dead(ioc, udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  opts.servers = FakeDns::fmt_server(dead.local_endpoint().port());
  opts.timeout = 300ms;
  auto r = lookup("a.test");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kUnavailable);
}

TEST_F(Resolve, IoContextKeepsRunningWhileWaiting) {
  int ticks = 0;
  bool done = false;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor);
    while (!done) {
      t.expires_after(20ms);
      co_await t.async_wait(kTuple);
      ++ticks;
    }
  }, asio::detached);
  auto r = lookup("late.test");
  done = true;
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(strs(*r), std::vector<std::string>{"10.7.7.7:443"});
  EXPECT_GE(ticks, 5);  // 300 ms of answer delay, 20 ms ticks
}

TEST_F(Resolve, ConcurrentLookupsOnOneContext) {
  auto both = [&]() -> asio::awaitable<Result<std::vector<tcp::endpoint>>> {
    auto ex = co_await asio::this_coro::executor;
    std::optional<Result<std::vector<tcp::endpoint>>> late;
    asio::co_spawn(ex, [&]() -> asio::awaitable<void> { late.emplace(co_await resolve("late.test", 1, opts)); },
                   asio::detached);
    auto a = co_await resolve("a.test", 1, opts);
    EXPECT_FALSE(late.has_value());  // a.test answered while late.test still waited
    asio::steady_timer t(ex);
    while (!late) {
      t.expires_after(10ms);
      co_await t.async_wait(kTuple);
    }
    EXPECT_TRUE(a.ok());
    co_return std::move(*late);
  };
  auto r = run(ioc, both());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(strs(*r), std::vector<std::string>{"10.7.7.7:1"});
}

TEST_F(Resolve, ManyLookupsOnAThreadPool) {
  // The resolver's own work runs on a strand: any number of threads may run
  // the caller's io_context.
  asio::io_context pool{4};
  std::atomic<int> good{0}, finished{0};
  constexpr int kLookups = 40;
  for (int i = 0; i < kLookups; ++i) {
    asio::co_spawn(pool, [&, i]() -> asio::awaitable<void> {
      auto r = co_await resolve(i % 2 ? "dual.test" : "alias.test", static_cast<uint16_t>(i + 1), opts);
      if (r.ok() && r->size() == 2 && r->front().address().is_v4() && r->front().port() == i + 1) ++good;
      ++finished;
    }, asio::detached);
  }
  // The fake server runs on the fixture's context, on this thread.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&] { pool.run_for(20s); });
  auto until = std::chrono::steady_clock::now() + 20s;
  while (finished < kLookups && std::chrono::steady_clock::now() < until) ioc.run_for(10ms);
  pool.stop();
  for (auto& t : threads) t.join();
  EXPECT_EQ(finished.load(), kLookups);
  EXPECT_EQ(good.load(), kLookups);
}

TEST_F(Resolve, SearchDomainsFromResolvConf) {
  TempFile conf("# test\nsearch corp.test other.test\noptions ndots:1\n");
  opts.resolv_conf = conf.path;
  auto r = lookup("web");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(strs(*r), std::vector<std::string>{"10.5.5.5:443"});
  ASSERT_FALSE(dns.asked.empty());
  EXPECT_EQ(dns.asked.front().substr(0, dns.asked.front().find('/')), "web.corp.test");
  // A name with a dot (>= ndots) is tried as is first.
  dns.asked.clear();
  auto a = lookup("a.test");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(dns.asked.front().substr(0, dns.asked.front().find('/')), "a.test");
  // Not anywhere: every candidate fails, NXDOMAIN overall.
  auto none = lookup("nothere");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().kind, ErrorKind::kNotFound);
}

TEST_F(Resolve, NameserverFromResolvConf) {
  // No servers override: the nameserver is the given resolv.conf's (c-ares
  // 1.18 reads "nameserver IP" on port 53 only, so the fake server cannot be
  // named there; a loopback address nothing listens on shows the line is used).
  TempFile conf("nameserver 127.1.2.3\noptions timeout:1 attempts:1\n");
  opts.servers.clear();
  opts.resolv_conf = conf.path;
  opts.timeout = 1500ms;
  auto r = lookup("a.test");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kUnavailable) << r.error().message;
  EXPECT_TRUE(dns.asked.empty());
}

TEST_F(Resolve, ServersOverrideResolvConfNameservers) {
  TempFile conf("nameserver 192.0.2.1\noptions timeout:1 attempts:1\n");  // unreachable
  opts.resolv_conf = conf.path;
  auto r = lookup("a.test");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(strs(*r).size(), 2u);
}

TEST_F(Resolve, HostsFileWins) {
  TempFile hosts("# comment\n127.0.0.1 localhost\n10.8.8.8   a.test  alias-a # trailing\n::1 localhost ip6-localhost\n"
                 "fd00::8 A.TEST\n");
  opts.hosts_file = hosts.path;
  auto r = lookup("a.test", 7);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(strs(*r), (std::vector<std::string>{"10.8.8.8:7", "[fd00::8]:7"}));
  auto alias = lookup("alias-a", 7);
  ASSERT_TRUE(alias.ok());
  EXPECT_EQ(strs(*alias), std::vector<std::string>{"10.8.8.8:7"});
  auto local = lookup("localhost", 9);
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(strs(*local), (std::vector<std::string>{"127.0.0.1:9", "[::1]:9"}));
  EXPECT_TRUE(dns.asked.empty());
  // Names not in the file still go to DNS.
  auto other = lookup("dual.test");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(strs(*other).size(), 2u);
}

TEST_F(Resolve, RejectsMalformedNames) {
  for (std::string bad : {"", "a b", "[nothex]", "..x"}) {
    auto r = lookup(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalid) << bad;
  }
  EXPECT_TRUE(dns.asked.empty());
}

TEST(ResolveHosts, Parser) {
  TempFile hosts("10.0.0.1 one uno\n#10.0.0.2 one\n  10.0.0.3\tone.\nbogus one\n");
  auto a = hosts_lookup(hosts.path, "ONE");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].to_string(), "10.0.0.1");
  EXPECT_EQ(a[1].to_string(), "10.0.0.3");
  EXPECT_EQ(hosts_lookup(hosts.path, "uno.").size(), 1u);
  EXPECT_TRUE(hosts_lookup(hosts.path, "two").empty());
  EXPECT_TRUE(hosts_lookup("/nonexistent/hosts", "one").empty());
}

}  // namespace
}  // namespace pier::client

#include "client/resolve.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>

#include "common/strings.h"

namespace pier::client {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// What one c-ares lookup came to.
struct Outcome {
  int status = ARES_SUCCESS;
  bool timed_out = false;  // our deadline cancelled it
  std::string what;        // set when the channel could not even be set up
  std::vector<asio::ip::address> addrs;
};

int library_status() {
  static const int status = ares_library_init(ARES_LIB_INIT_ALL);
  return status;
}

// One ares channel and one ares_getaddrinfo on it, driven by asio: every
// socket c-ares opens (reported by its socket-state callback) is watched with
// a stream_descriptor wait, ares_timeout() is kept on a steady_timer, and a
// second timer bounds the whole lookup. Everything runs on one strand, so the
// caller's io_context may have any number of threads.
class Lookup : public std::enable_shared_from_this<Lookup> {
 public:
  using Handler = asio::any_completion_handler<void(Outcome)>;

  Lookup(const asio::any_io_executor& ex, Handler handler)
      : io_ex_(ex), strand_(asio::make_strand(ex)), timer_(strand_), deadline_(strand_), handler_(std::move(handler)) {}
  ~Lookup() {
    finished_ = true;  // ares_destroy's callbacks must not post anything now
    if (channel_) ares_destroy(channel_);
  }

  void start(std::string name, ResolverOptions opts) {
    asio::post(strand_, [self = shared_from_this(), name = std::move(name), opts = std::move(opts)] {
      self->begin(name, opts);
    });
  }

 private:
  struct Watch {
    Watch(const asio::strand<asio::any_io_executor>& s, int f) : sd(s), fd(f) {}
    asio::posix::stream_descriptor sd;
    int fd;
    bool want_read = false, want_write = false, reading = false, writing = false, closed = false;
  };

  void begin(const std::string& name, const ResolverOptions& opts) {
    if (int st = library_status(); st != ARES_SUCCESS) return fail(st, "c-ares initialisation failed");
    ares_options o{};
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS;
    o.sock_state_cb = &Lookup::on_sock_state;
    o.sock_state_cb_data = this;
    char lookups[] = "b";  // DNS only: resolve() has read the hosts file itself
    o.lookups = lookups;
    std::string resolv_conf = opts.resolv_conf;
    if (!resolv_conf.empty()) {
      mask |= ARES_OPT_RESOLVCONF;
      o.resolvconf_path = resolv_conf.data();
    }
    if (int st = ares_init_options(&channel_, &o, mask); st != ARES_SUCCESS) {
      channel_ = nullptr;
      return fail(st, "c-ares channel");
    }
    if (!opts.servers.empty())
      if (int st = ares_set_servers_ports_csv(channel_, opts.servers.c_str()); st != ARES_SUCCESS)
        return fail(st, fmt::format("bad nameserver list \"{}\"", opts.servers));

    deadline_.expires_after(opts.timeout);
    deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->finished_ || self->outcome_) return;
      self->timed_out_ = true;
      ares_cancel(self->channel_);  // the callback runs now, with what was gathered
    });
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = ARES_AI_NOSORT;  // resolve() orders IPv4 first; no probing sockets
    ares_getaddrinfo(channel_, name.c_str(), nullptr, &hints, &Lookup::on_done, this);
    if (!outcome_) rearm_timer();
  }

  void fail(int status, std::string what) {
    outcome_ = Outcome{status, false, std::move(what), {}};
    complete();
  }

  static void on_done(void* arg, int status, int /*timeouts*/, ares_addrinfo* ai) {
    auto* self = static_cast<Lookup*>(arg);
    Outcome o;
    o.status = status;
    if (ai) {
      for (auto* n = ai->nodes; n; n = n->ai_next) {
        if (n->ai_family == AF_INET && n->ai_addrlen >= sizeof(sockaddr_in)) {
          const auto* sa = reinterpret_cast<const sockaddr_in*>(n->ai_addr);
          o.addrs.emplace_back(asio::ip::address_v4(ntohl(sa->sin_addr.s_addr)));
        } else if (n->ai_family == AF_INET6 && n->ai_addrlen >= sizeof(sockaddr_in6)) {
          const auto* sa = reinterpret_cast<const sockaddr_in6*>(n->ai_addr);
          asio::ip::address_v6::bytes_type b;
          std::copy_n(sa->sin6_addr.s6_addr, 16, b.begin());
          o.addrs.emplace_back(asio::ip::address_v6(b, sa->sin6_scope_id));
        }
      }
      ares_freeaddrinfo(ai);
    }
    if (self->finished_ || self->outcome_) return;  // ares_destroy's ARES_EDESTRUCTION
    self->outcome_ = std::move(o);
    // Not from inside c-ares: the channel is destroyed on the way out.
    asio::post(self->strand_, [s = self->shared_from_this()] { s->complete(); });
  }

  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<Lookup*>(data);
    auto it = self->watches_.find(fd);
    if (!readable && !writable) {  // c-ares is about to close it
      if (it != self->watches_.end()) {
        it->second->closed = true;
        (void)it->second->sd.release();  // cancels the waits; the fd stays c-ares's
        self->watches_.erase(it);
      }
      return;
    }
    if (it == self->watches_.end()) {
      auto w = std::make_shared<Watch>(self->strand_, fd);
      boost::system::error_code ec;
      w->sd.assign(fd, ec);
      if (ec) return;  // c-ares times the query out
      it = self->watches_.emplace(fd, std::move(w)).first;
    }
    it->second->want_read = readable != 0;
    it->second->want_write = writable != 0;
    self->arm(it->second);
  }

  void arm(const std::shared_ptr<Watch>& w) {
    if (w->want_read && !w->reading) {
      w->reading = true;
      w->sd.async_wait(asio::posix::descriptor_base::wait_read,
                       [self = shared_from_this(), w](boost::system::error_code ec) {
                         w->reading = false;
                         if (w->closed || self->finished_ || ec == asio::error::operation_aborted) return;
                         ares_process_fd(self->channel_, w->fd, ARES_SOCKET_BAD);
                         self->after_io(w);
                       });
    }
    if (w->want_write && !w->writing) {
      w->writing = true;
      w->sd.async_wait(asio::posix::descriptor_base::wait_write,
                       [self = shared_from_this(), w](boost::system::error_code ec) {
                         w->writing = false;
                         if (w->closed || self->finished_ || ec == asio::error::operation_aborted) return;
                         ares_process_fd(self->channel_, ARES_SOCKET_BAD, w->fd);
                         self->after_io(w);
                       });
    }
  }

  void after_io(const std::shared_ptr<Watch>& w) {
    if (finished_) return;
    if (!w->closed) arm(w);
    rearm_timer();
  }

  // c-ares's own retransmission and per-try timeouts.
  void rearm_timer() {
    if (finished_ || outcome_) return;
    timeval tv{};
    timeval* t = ares_timeout(channel_, nullptr, &tv);
    ++timer_gen_;
    if (!t) {
      timer_.cancel();
      return;
    }
    timer_.expires_after(std::chrono::seconds(t->tv_sec) + std::chrono::microseconds(t->tv_usec));
    timer_.async_wait([self = shared_from_this(), gen = timer_gen_](boost::system::error_code ec) {
      if (ec || self->finished_ || self->outcome_ || gen != self->timer_gen_) return;
      ares_process_fd(self->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      self->rearm_timer();
    });
  }

  void complete() {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    deadline_.cancel();
    if (channel_) {
      ares_destroy(channel_);  // reports its sockets closed: their watches go
      channel_ = nullptr;
    }
    for (auto& [fd, w] : watches_) {
      w->closed = true;
      (void)w->sd.release();
    }
    watches_.clear();
    Outcome o = std::move(*outcome_);
    o.timed_out = timed_out_;
    // Back on the caller's executor (the awaiting coroutine's).
    asio::post(io_ex_, [h = std::move(handler_), o = std::move(o)]() mutable { std::move(h)(std::move(o)); });
  }

  asio::any_io_executor io_ex_;
  asio::strand<asio::any_io_executor> strand_;
  asio::steady_timer timer_, deadline_;
  uint64_t timer_gen_ = 0;
  ares_channel channel_ = nullptr;
  std::map<int, std::shared_ptr<Watch>> watches_;
  Handler handler_;
  std::optional<Outcome> outcome_;
  bool timed_out_ = false, finished_ = false;
};

template <class Token>
auto async_lookup(asio::any_io_executor ex, std::string name, ResolverOptions opts, Token&& token) {
  return asio::async_initiate<Token, void(Outcome)>(
      [](auto handler, asio::any_io_executor ex, std::string name, ResolverOptions opts) {
        auto l = std::make_shared<Lookup>(ex, Lookup::Handler(std::move(handler)));
        l->start(std::move(name), std::move(opts));
      },
      token, std::move(ex), std::move(name), std::move(opts));
}

std::vector<tcp::endpoint> endpoints(std::vector<asio::ip::address> addrs, uint16_t port) {
  std::stable_partition(addrs.begin(), addrs.end(), [](const auto& a) { return a.is_v4(); });
  std::vector<tcp::endpoint> out;
  for (const auto& a : addrs) {
    tcp::endpoint ep(a, port);
    if (std::find(out.begin(), out.end(), ep) == out.end()) out.push_back(ep);
  }
  return out;
}

bool valid_name(std::string_view n) {
  if (n.empty() || n.size() > 254) return false;
  for (unsigned char c : n)
    if (c <= ' ' || c == 0x7f) return false;
  return n.find("..") == std::string_view::npos && n.front() != '.';
}

}  // namespace

std::optional<asio::ip::address> parse_literal(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    boost::system::error_code ec;
    auto a = asio::ip::make_address_v6(std::string(host), ec);
    if (ec) return std::nullopt;
    return asio::ip::address(a);
  }
  boost::system::error_code ec;
  auto a = asio::ip::make_address(std::string(host), ec);
  if (ec) return std::nullopt;
  return a;
}

std::vector<asio::ip::address> hosts_lookup(const std::string& hosts_file, std::string_view name) {
  std::vector<asio::ip::address> out;
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return out;
  std::ifstream in(hosts_file);
  std::string line;
  while (std::getline(in, line)) {
    std::string_view l(line);
    l = l.substr(0, l.find('#'));
    std::vector<std::string_view> words;
    size_t i = 0;
    while (i < l.size()) {
      while (i < l.size() && (l[i] == ' ' || l[i] == '\t' || l[i] == '\r')) ++i;
      size_t j = i;
      while (j < l.size() && l[j] != ' ' && l[j] != '\t' && l[j] != '\r') ++j;
      if (j > i) words.push_back(l.substr(i, j - i));
      i = j;
    }
    if (words.size() < 2) continue;
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(std::string(words[0]), ec);
    if (ec) continue;
    for (size_t k = 1; k < words.size(); ++k) {
      auto w = words[k];
      if (!w.empty() && w.back() == '.') w.remove_suffix(1);
      if (str::iequals(w, name)) {
        if (std::find(out.begin(), out.end(), addr) == out.end()) out.push_back(addr);
        break;
      }
    }
  }
  return out;
}

asio::awaitable<Result<std::vector<tcp::endpoint>>> resolve(std::string host, uint16_t port,
                                                           ResolverOptions opts) {
  if (auto a = parse_literal(host)) co_return std::vector<tcp::endpoint>{tcp::endpoint(*a, port)};
  if (!valid_name(host) || host.front() == '[')
    co_return Error::invalid("InvalidName", fmt::format("cannot resolve \"{}\": not a valid host name", host));
  if (!opts.hosts_file.empty())
    if (auto from_file = hosts_lookup(opts.hosts_file, host); !from_file.empty())
      co_return endpoints(std::move(from_file), port);

  auto ex = co_await asio::this_coro::executor;
  auto timeout_ms = opts.timeout.count();
  Outcome o = co_await async_lookup(ex, host, std::move(opts), asio::use_awaitable);
  if (o.status == ARES_SUCCESS && !o.addrs.empty()) co_return endpoints(std::move(o.addrs), port);
  if (o.timed_out && o.status == ARES_ECANCELLED)
    co_return Error{ErrorKind::kUnavailable, "NameResolutionTimeout",
                    fmt::format("resolving {}: no answer from the nameservers within {} ms", host, timeout_ms)};
  if (!o.what.empty())
    co_return Error{ErrorKind::kInternal, "NameResolutionFailure",
                    fmt::format("resolving {}: {}: {}", host, o.what, ares_strerror(o.status))};
  switch (o.status) {
    case ARES_SUCCESS:
    case ARES_ENODATA:
      co_return Error::not_found("NameNotFound", fmt::format("{} has no IPv4 or IPv6 address", host));
    case ARES_ENOTFOUND:
      co_return Error::not_found("NameNotFound", fmt::format("{}: no such host (NXDOMAIN)", host));
    case ARES_EBADNAME:
      co_return Error::invalid("InvalidName", fmt::format("cannot resolve \"{}\": not a valid host name", host));
    case ARES_ETIMEOUT:
      co_return Error{ErrorKind::kUnavailable, "NameResolutionTimeout",
                      fmt::format("resolving {}: the nameservers did not answer", host)};
    default:
      co_return Error{ErrorKind::kUnavailable, "NameResolutionFailure",
                      fmt::format("resolving {}: {}", host, ares_strerror(o.status))};
  }
}

}  // namespace pier::client

#include "runtime/images.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/crypto.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/time.h"
#include "runtime/layers.h"

extern char** environ;

namespace pier::runtime {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

constexpr std::string_view kIndexType = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view kManifestType = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view kConfigType = "application/vnd.oci.image.config.v1+json";
constexpr std::string_view kDockerManifestType = "application/vnd.docker.distribution.manifest.v2+json";
constexpr std::string_view kDockerListType = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr std::string_view kRefName = "org.opencontainers.image.ref.name";
constexpr std::string_view kDefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string errno_text(int e) { return std::strerror(e); }

Error not_found_image(const std::string& what) {
  return Error::not_found("ImageNotFound", "image not found: " + what);
}

bool is_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_digest(std::string_view s) { return s.starts_with("sha256:") && is_hex64(s.substr(7)); }

std::string digest_hex(std::string_view d) { return std::string(d.substr(7)); }

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error::not_found("NotFound", path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Error::internal(path + ": read failed");
  return ss.str();
}

Status write_file(const std::string& path, std::string_view data, bool sync) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Error::internal(path + ": " + errno_text(errno));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return Error::internal(path + ": " + errno_text(e));
    }
    done += static_cast<size_t>(n);
  }
  if (sync && ::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    return Error::internal(path + ": fsync: " + errno_text(e));
  }
  if (::close(fd) != 0) return Error::internal(path + ": " + errno_text(errno));
  return {};
}

// Writes DATA into STAGING as a blob; returns its digest.
Result<std::string> stage_bytes(const std::string& staging, std::string_view data) {
  std::string digest = "sha256:" + str::hex(crypto::sha256(data));
  PIER_TRY(write_file(staging + "/" + digest_hex(digest), data, false));
  return digest;
}

Result<json::value> parse_json(std::string_view text, const std::string& what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return Error::invalid("InvalidImage", what + ": bad JSON: " + ec.message());
  return v;
}

std::string get_str(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (v && v->is_string()) return std::string(v->as_string());
  return {};
}

int64_t get_int(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (v && v->is_int64()) return v->as_int64();
  if (v && v->is_uint64()) return static_cast<int64_t>(v->as_uint64());
  return -1;
}

const json::object* get_obj(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_object() ? &v->as_object() : nullptr;
}

const json::array* get_arr(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_array() ? &v->as_array() : nullptr;
}

std::string now_iso() {
  return time::iso8601(time::epoch(std::chrono::system_clock::now()));
}

std::string random_suffix() { return str::hex(crypto::random_bytes(8)); }

// Docker's reference grammar, piece by piece.
bool valid_path_component(std::string_view c) {
  // [a-z0-9]+ ( ( [._] | __ | [-]+ ) [a-z0-9]+ )*
  if (c.empty()) return false;
  auto alnum = [](char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'); };
  if (!alnum(c.front()) || !alnum(c.back())) return false;
  for (size_t i = 0; i < c.size();) {
    if (alnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !alnum(c[j])) ++j;
    std::string_view sep = c.substr(i, j - i);
    bool ok = sep == "." || sep == "_" || sep == "__" ||
              std::all_of(sep.begin(), sep.end(), [](char ch) { return ch == '-'; });
    if (!ok) return false;
    i = j;
  }
  return true;
}

bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  auto word = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
  if (!word(t[0])) return false;
  return std::all_of(t.begin(), t.end(), [&](char ch) { return word(ch) || ch == '.' || ch == '-'; });
}

bool valid_registry(std::string_view r) {
  std::string_view host = r, port;
  if (auto colon = r.rfind(':'); colon != std::string_view::npos && r.front() != '[') {
    host = r.substr(0, colon);
    port = r.substr(colon + 1);
    if (port.empty() || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return false;
  }
  if (host.empty()) return false;
  for (auto label : str::split(host, '.')) {
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char c : label)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

bool is_docker_hub(std::string_view registry) {
  return registry == "docker.io" || registry == "index.docker.io" || registry == "registry-1.docker.io";
}

// The names under which a reference's image may be stored ("x" and
// "docker.io/library/x" are the same image).
std::vector<std::string> candidate_names(const ImageRef& ref) {
  std::vector<std::string> out{ref.name()};
  if (is_docker_hub(ref.registry)) {
    out.push_back(ref.repository);
    if (ref.repository.starts_with("library/")) out.push_back(ref.repository.substr(8));
    out.push_back("docker.io/" + ref.repository);
    if (ref.repository.find('/') == std::string::npos) {
      out.push_back("library/" + ref.repository);
      out.push_back("docker.io/library/" + ref.repository);
    }
  } else if (ref.registry.empty()) {
    out.push_back("docker.io/" + ref.repository);
    if (ref.repository.find('/') == std::string::npos) out.push_back("docker.io/library/" + ref.repository);
    if (ref.repository.starts_with("library/")) out.push_back(ref.repository.substr(8));
  }
  std::vector<std::string> uniq;
  for (auto& n : out)
    if (std::find(uniq.begin(), uniq.end(), n) == uniq.end()) uniq.push_back(n);
  return uniq;
}

// The OCI spelling of an ELF-free guess: the architecture this binary runs as.
constexpr const char* kHostArch =
#if defined(__x86_64__)
    "amd64";
#elif defined(__aarch64__)
    "arm64";
#elif defined(__arm__)
    "arm";
#elif defined(__i386__)
    "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    "ppc64le";
#elif defined(__s390x__)
    "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
    "riscv64";
#else
    "unknown";
#endif

// True when the ELF file at PATH asks for a program interpreter (it is dynamically linked).
bool elf_is_dynamic(const std::string& data) {
  if (data.size() < 64 || data.compare(0, 4, "\x7f" "ELF") != 0 || data[5] != 1) return false;
  auto u16 = [&](size_t off) -> uint64_t {
    return static_cast<unsigned char>(data[off]) | (static_cast<uint64_t>(static_cast<unsigned char>(data[off + 1])) << 8);
  };
  auto un = [&](size_t off, int n) -> uint64_t {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(data[off + i]);
    return v;
  };
  bool is64 = data[4] == 2;
  uint64_t phoff = is64 ? un(0x20, 8) : un(0x1c, 4);
  uint64_t phentsize = is64 ? u16(0x36) : u16(0x2a);
  uint64_t phnum = is64 ? u16(0x38) : u16(0x2c);
  for (uint64_t i = 0; i < phnum; ++i) {
    uint64_t off = phoff + i * phentsize;
    if (off + 4 > data.size()) break;
    if (un(off, 4) == 3) return true;  // PT_INTERP
  }
  return false;
}

// Runs ARGV, returns its stdout.
Result<std::string> run_capture(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Error::internal("pipe: " + errno_text(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0].c_str(), &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return Error::internal("spawn " + argv[0] + ": " + errno_text(rc));
  }
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return Error::internal(argv[0] + " failed");
  return out;
}

void remove_tree(const std::string& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) log::get("runtime")->warn("cannot remove {}: {}", p, ec.message());
}

json::object descriptor(std::string_view media_type, const std::string& digest, int64_t size) {
  return json::object{{"mediaType", media_type}, {"digest", digest}, {"size", size}};
}

// A layout's blob, checked against its descriptor, copied into STAGING.
Status stage_blob(const std::string& layout, const json::object& desc, const std::string& staging) {
  std::string digest = get_str(desc, "digest");
  if (!is_digest(digest)) return Error::invalid("InvalidImage", "unsupported or malformed digest \"" + digest + "\"");
  std::string hex = digest_hex(digest);
  PIER_ASSIGN(auto got, copy_file_digest(layout + "/blobs/sha256/" + hex, staging + "/" + hex));
  if (got.digest != digest) return Error::invalid("InvalidImage", "blob " + digest + " does not match its digest (" + got.digest + ")");
  int64_t size = get_int(desc, "size");
  if (size >= 0 && size != got.size)
    return Error::invalid("InvalidImage", "blob " + digest + " is " + std::to_string(got.size) + " bytes, not " + std::to_string(size));
  return {};
}

std::string oci_layer_type(std::string_view t) {
  if (t == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
      t == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
    return "application/vnd.oci.image.layer.v1.tar+gzip";
  if (t == "application/vnd.docker.image.rootfs.diff.tar" || t == "application/vnd.docker.image.rootfs.diff.tar.zstd")
    return t.ends_with("zstd") ? "application/vnd.oci.image.layer.v1.tar+zstd" : "application/vnd.oci.image.layer.v1.tar";
  return std::string(t);
}

bool is_index_type(std::string_view t) { return t == kIndexType || t == kDockerListType; }

}  // namespace

std::string host_architecture() { return kHostArch; }

// ---------------------------------------------------------------- ImageRef

Result<ImageRef> ImageRef::parse(std::string_view s) {
  auto bad = [&](const std::string& why) {
    return Error::invalid("InvalidParameterException", "invalid image reference \"" + std::string(s) + "\": " + why);
  };
  ImageRef r;
  if (s.empty()) return bad("empty");
  if (s.size() > 512) return bad("too long");
  if (is_digest(s)) {
    r.digest = std::string(s);
    return r;
  }
  if (is_hex64(s)) {
    r.digest = "sha256:" + std::string(s);
    return r;
  }
  if (s.starts_with("sha256:") && s.find('/') == std::string_view::npos)
    return bad("digest must be sha256:<64 hex digits>");  // not the repository "sha256"
  std::string_view rest = s;
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    std::string_view d = rest.substr(at + 1);
    if (!is_digest(d)) return bad("digest must be sha256:<64 hex digits>");
    r.digest = std::string(d);
    rest = rest.substr(0, at);
  }
  if (rest.empty()) return bad("no name");
  auto slash = rest.find('/');
  if (slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, slash);
    if (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos || first == "localhost") {
      if (!valid_registry(first)) return bad("bad registry \"" + std::string(first) + "\"");
      r.registry = std::string(first);
      rest = rest.substr(slash + 1);
    }
  }
  auto last_slash = rest.rfind('/');
  auto colon = rest.rfind(':');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view t = rest.substr(colon + 1);
    if (!valid_tag(t)) return bad("bad tag \"" + std::string(t) + "\"");
    r.tag = std::string(t);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return bad("no repository");
  for (auto c : str::split(rest, '/'))
    if (!valid_path_component(c)) return bad("bad repository component \"" + std::string(c) + "\"");
  r.repository = std::string(rest);
  if (r.name().size() > 255) return bad("name longer than 255 characters");
  if (r.tag.empty() && r.digest.empty()) r.tag = "latest";
  return r;
}

std::string ImageRef::name() const {
  if (registry.empty()) return repository;
  return registry + "/" + repository;
}

std::string ImageRef::str() const {
  if (repository.empty()) return digest;
  std::string out = name();
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

// ---------------------------------------------------------------- ImageStore

ImageStore::ImageStore(std::string dir) : dir_(std::move(dir)) {}
ImageStore::~ImageStore() = default;

Result<std::unique_ptr<ImageStore>> ImageStore::open(const std::string& dir) {
  if (dir.empty()) return Error::invalid("InvalidParameterException", "image store directory is empty");
  std::error_code ec;
  for (const char* sub : {"blobs/sha256", "layers", "tmp"}) {
    fs::create_directories(fs::path(dir) / sub, ec);
    if (ec) return Error::internal("cannot create " + dir + "/" + sub + ": " + ec.message());
  }
  // Leftovers of an import or unpack that did not finish.
  for (auto it = fs::directory_iterator(dir + "/tmp", ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    remove_tree(it->path().string());
  std::unique_ptr<ImageStore> store(new ImageStore(fs::absolute(dir).lexically_normal().string()));
  if (!fs::exists(dir + "/oci-layout"))
    PIER_TRY(write_file(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})", true));
  if (!fs::exists(dir + "/index.json")) {
    std::lock_guard lock(store->mu_);
    PIER_TRY(store->write_index_locked());
  }
  PIER_TRY(store->load());
  return store;
}

std::string ImageStore::blob_path(std::string_view digest) const {
  return dir_ + "/blobs/sha256/" + digest_hex(digest);
}

Result<Image> ImageStore::load_image(const std::string& digest) const {
  if (!is_digest(digest)) return Error::invalid("InvalidImage", "bad manifest digest " + digest);
  PIER_ASSIGN(std::string mtext, read_file(blob_path(digest)));
  PIER_ASSIGN(json::value mv, parse_json(mtext, "manifest " + digest));
  if (!mv.is_object()) return Error::invalid("InvalidImage", "manifest " + digest + " is not an object");
  const auto& m = mv.as_object();
  const auto* cfg = get_obj(m, "config");
  const auto* layers = get_arr(m, "layers");
  if (!cfg || !layers) return Error::invalid("InvalidImage", "manifest " + digest + " has no config or layers");
  Image img;
  img.digest = digest;
  img.config_digest = get_str(*cfg, "digest");
  if (!is_digest(img.config_digest)) return Error::invalid("InvalidImage", "bad config digest in " + digest);
  for (const auto& l : *layers) {
    if (!l.is_object()) return Error::invalid("InvalidImage", "bad layer in " + digest);
    std::string d = get_str(l.as_object(), "digest");
    if (!is_digest(d)) return Error::invalid("InvalidImage", "bad layer digest in " + digest);
    img.layers.push_back(d);
    img.size += std::max<int64_t>(0, get_int(l.as_object(), "size"));
  }
  PIER_ASSIGN(std::string ctext, read_file(blob_path(img.config_digest)));
  PIER_ASSIGN(json::value cv, parse_json(ctext, "config " + img.config_digest));
  if (!cv.is_object()) return Error::invalid("InvalidImage", "config " + img.config_digest + " is not an object");
  const auto& c = cv.as_object();
  img.architecture = get_str(c, "architecture");
  img.os = get_str(c, "os");
  if (const auto* cc = get_obj(c, "config")) img.config = *cc;
  if (const auto* rootfs = get_obj(c, "rootfs"))
    if (const auto* ids = get_arr(*rootfs, "diff_ids"))
      for (const auto& d : *ids)
        if (d.is_string()) img.diff_ids.emplace_back(d.as_string());
  if (img.diff_ids.size() != img.layers.size())
    return Error::invalid("InvalidImage", "image " + digest + " has " + std::to_string(img.layers.size()) +
                                              " layers but " + std::to_string(img.diff_ids.size()) + " diff ids");
  for (const auto& d : img.diff_ids)
    if (!is_digest(d)) return Error::invalid("InvalidImage", "bad diff id " + d + " in " + digest);
  if (auto created = get_str(c, "created"); !created.empty())
    if (auto t = time::parse_iso8601(created)) img.created_ms = static_cast<int64_t>(std::llround(*t * 1000));
  return img;
}

Status ImageStore::load() {
  PIER_ASSIGN(std::string text, read_file(dir_ + "/index.json"));
  PIER_ASSIGN(json::value v, parse_json(text, dir_ + "/index.json"));
  std::lock_guard lock(mu_);
  entries_.clear();
  images_.clear();
  if (!v.is_object()) return Error::internal(dir_ + "/index.json is not an object");
  const auto* manifests = get_arr(v.as_object(), "manifests");
  if (!manifests) return {};
  for (const auto& mv : *manifests) {
    if (!mv.is_object()) continue;
    const auto& m = mv.as_object();
    Entry e;
    e.digest = get_str(m, "digest");
    e.size = get_int(m, "size");
    if (const auto* ann = get_obj(m, "annotations")) e.ref_name = get_str(*ann, kRefName);
    auto img = load_image(e.digest);
    if (!img) {
      log::get("runtime")->warn("image store {}: skipping {} ({}): {}", dir_, e.ref_name, e.digest, img.error().message);
      continue;
    }
    images_.emplace(e.digest, std::move(img).value());
    entries_.push_back(std::move(e));
  }
  return {};
}

Status ImageStore::write_index_locked() {
  json::array manifests;
  for (const auto& e : entries_) {
    json::object d = descriptor(kManifestType, e.digest, e.size);
    if (auto it = images_.find(e.digest); it != images_.end())
      d["platform"] = json::object{{"architecture", it->second.architecture}, {"os", it->second.os}};
    if (!e.ref_name.empty()) d["annotations"] = json::object{{kRefName, e.ref_name}};
    manifests.push_back(std::move(d));
  }
  json::object index{{"schemaVersion", 2}, {"mediaType", kIndexType}, {"manifests", std::move(manifests)}};
  std::string tmp = dir_ + "/tmp/index.json." + random_suffix();
  PIER_TRY(write_file(tmp, json::serialize(index), true));
  if (::rename(tmp.c_str(), (dir_ + "/index.json").c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Error::internal("rename index.json: " + errno_text(e));
  }
  return {};
}

Status ImageStore::gc_locked() {
  std::set<std::string> blobs, layers;
  for (const auto& e : entries_) {
    auto it = images_.find(e.digest);
    if (it == images_.end()) return {};  // cannot tell what it uses: keep everything
    blobs.insert(digest_hex(e.digest));
    blobs.insert(digest_hex(it->second.config_digest));
    for (const auto& l : it->second.layers) blobs.insert(digest_hex(l));
    for (const auto& d : it->second.diff_ids) layers.insert(digest_hex(d));
  }
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir_ + "/blobs/sha256", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (!blobs.count(it->path().filename().string())) {
      log::get("runtime")->debug("image store: deleting blob {}", it->path().filename().string());
      remove_tree(it->path().string());
    }
  }
  for (auto it = fs::directory_iterator(dir_ + "/layers", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (!layers.count(it->path().filename().string())) {
      log::get("runtime")->debug("image store: deleting unpacked layer {}", it->path().filename().string());
      remove_tree(it->path().string());
    }
  }
  return {};
}

Result<std::string> ImageStore::make_staging() {
  std::string p = dir_ + "/tmp/stage-" + random_suffix();
  if (::mkdir(p.c_str(), 0700) != 0) return Error::internal("mkdir " + p + ": " + errno_text(errno));
  return p;
}

Result<Image> ImageStore::commit(const std::string& name, const std::string& staging,
                                 const std::string& manifest_digest, int64_t manifest_size) {
  std::lock_guard lock(mu_);
  std::error_code ec;
  for (auto it = fs::directory_iterator(staging, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::string hex = it->path().filename().string();
    if (!is_hex64(hex)) continue;
    std::string dst = dir_ + "/blobs/sha256/" + hex;
    if (fs::exists(dst)) continue;
    if (::rename(it->path().c_str(), dst.c_str()) != 0)
      return Error::internal("rename blob " + hex + ": " + errno_text(errno));
  }
  if (ec) return Error::internal("read " + staging + ": " + ec.message());
  PIER_ASSIGN(Image img, load_image(manifest_digest));
  images_[manifest_digest] = img;
  std::string old;
  bool found = false;
  for (auto& e : entries_) {
    if (e.ref_name == name) {
      old = e.digest;
      e.digest = manifest_digest;
      e.size = manifest_size;
      found = true;
      break;
    }
  }
  if (!found) entries_.push_back({name, manifest_digest, manifest_size});
  // A digest with a tag needs no dangling entry; a digest that lost its last tag keeps one.
  std::erase_if(entries_, [&](const Entry& e) { return e.ref_name.empty() && e.digest == manifest_digest; });
  if (!old.empty() && old != manifest_digest) {
    bool tagged = std::any_of(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.digest == old; });
    if (!tagged) {
      auto it = images_.find(old);
      entries_.push_back({"", old, 0});
      if (it != images_.end()) {
        if (auto text = read_file(blob_path(old))) entries_.back().size = static_cast<int64_t>(text->size());
      }
    }
  }
  PIER_TRY(write_index_locked());
  img.name = name;
  log::get("runtime")->info("image {} is {}", name, manifest_digest);
  return img;
}

Result<Image> ImageStore::import(const std::string& name, const std::string& path) {
  PIER_ASSIGN(ImageRef ref, ImageRef::parse(name));
  if (ref.repository.empty() || !ref.digest.empty())
    return Error::invalid("InvalidParameterException", "an image is imported under name[:tag], not a digest: " + name);
  std::string key = ref.name() + ":" + ref.tag;
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return Error::not_found("NotFound", "no such file: " + path);
  if (fs::is_directory(st)) return import_layout(key, path);
  if (!fs::is_regular_file(st)) return Error::invalid("InvalidParameterException", path + " is not a file or directory");
  bool has_layout = false, has_index = false;
  PIER_ASSIGN(LayerInfo info, inspect_layer(path, [&](std::string_view p) {
                while (p.starts_with("./")) p.remove_prefix(2);
                if (p == "oci-layout") has_layout = true;
                if (p == "index.json") has_index = true;
              }));
  if (has_layout && has_index) {
    std::string tmp = dir_ + "/tmp/layout-" + random_suffix();
    if (::mkdir(tmp.c_str(), 0700) != 0) return Error::internal("mkdir " + tmp + ": " + errno_text(errno));
    auto unpacked = unpack_layer(path, tmp);
    Result<Image> out = unpacked ? import_layout(key, tmp) : Result<Image>(std::move(unpacked).error());
    remove_tree(tmp);
    return out;
  }
  return import_rootfs(key, path, info);
}

Result<Image> ImageStore::import_rootfs(const std::string& key, const std::string& tarball, const LayerInfo& info) {
  if (info.compression == Compression::kOther)
    return Error::invalid("InvalidParameterException", tarball + ": only plain, gzip and zstd tarballs are supported");
  PIER_ASSIGN(std::string staging, make_staging());
  auto out = [&]() -> Result<Image> {
    std::string tmp = staging + "/layer.tmp";
    PIER_ASSIGN(FileDigest layer, copy_file_digest(tarball, tmp));
    if (::rename(tmp.c_str(), (staging + "/" + digest_hex(layer.digest)).c_str()) != 0)
      return Error::internal("rename: " + errno_text(errno));
    std::string created = now_iso();
    json::object config{
        {"created", created},
        {"architecture", host_architecture()},
        {"os", "linux"},
        {"config", json::object{{"Env", json::array{kDefaultPath}}}},
        {"rootfs", json::object{{"type", "layers"}, {"diff_ids", json::array{json::string(info.diff_id)}}}},
        {"history", json::array{json::object{{"created", created}, {"created_by", "pier import " + tarball}}}},
    };
    std::string ctext = json::serialize(config);
    PIER_ASSIGN(std::string cdigest, stage_bytes(staging, ctext));
    json::object manifest{
        {"schemaVersion", 2},
        {"mediaType", kManifestType},
        {"config", descriptor(kConfigType, cdigest, static_cast<int64_t>(ctext.size()))},
        {"layers", json::array{descriptor(layer_media_type(info.compression), layer.digest, layer.size)}},
    };
    std::string mtext = json::serialize(manifest);
    PIER_ASSIGN(std::string mdigest, stage_bytes(staging, mtext));
    return commit(key, staging, mdigest, static_cast<int64_t>(mtext.size()));
  }();
  remove_tree(staging);
  return out;
}

Result<Image> ImageStore::import_layout(const std::string& key, const std::string& layout) {
  if (!fs::exists(layout + "/oci-layout"))
    return Error::invalid("InvalidParameterException", layout + " is not an OCI image layout (no oci-layout)");
  PIER_ASSIGN(std::string itext, read_file(layout + "/index.json"));
  PIER_ASSIGN(json::value iv, parse_json(itext, layout + "/index.json"));
  auto tag_of = [](const std::string& k) { return k.substr(k.rfind(':') + 1); };
  std::string tag = tag_of(key);
  std::string arch = host_architecture();

  // Picks a manifest descriptor out of an index.
  auto pick = [&](const json::value& index, bool by_name) -> Result<json::object> {
    const json::array* ms = index.is_object() ? get_arr(index.as_object(), "manifests") : nullptr;
    if (!ms || ms->empty()) return Error::invalid("InvalidImage", layout + ": the index lists no manifests");
    std::vector<const json::object*> descs;
    for (const auto& m : *ms)
      if (m.is_object()) descs.push_back(&m.as_object());
    if (descs.empty()) return Error::invalid("InvalidImage", layout + ": the index lists no manifests");
    auto ref_name = [](const json::object* d) {
      const auto* ann = get_obj(*d, "annotations");
      return ann ? get_str(*ann, kRefName) : std::string();
    };
    if (by_name) {
      for (auto* d : descs)
        if (ref_name(d) == key) return *d;
      for (auto* d : descs)
        if (ref_name(d) == tag) return *d;
      for (auto* d : descs)
        if (ref_name(d).ends_with(":" + tag)) return *d;
    }
    if (descs.size() == 1) return *descs[0];
    for (auto* d : descs) {
      const auto* p = get_obj(*d, "platform");
      if (p && get_str(*p, "architecture") == arch && (get_str(*p, "os").empty() || get_str(*p, "os") == "linux"))
        return *d;
    }
    return *descs[0];
  };

  PIER_ASSIGN(std::string staging, make_staging());
  auto out = [&]() -> Result<Image> {
    PIER_ASSIGN(json::object desc, pick(iv, true));
    json::value manifest;
    std::string mtext;
    std::string mtype;
    for (int depth = 0;; ++depth) {
      if (depth > 4) return Error::invalid("InvalidImage", layout + ": image indexes nest too deep");
      PIER_TRY(stage_blob(layout, desc, staging));
      std::string d = get_str(desc, "digest");
      PIER_ASSIGN(mtext, read_file(staging + "/" + digest_hex(d)));
      PIER_ASSIGN(manifest, parse_json(mtext, "manifest " + d));
      if (!manifest.is_object()) return Error::invalid("InvalidImage", "manifest " + d + " is not an object");
      mtype = get_str(desc, "mediaType");
      if (mtype.empty()) mtype = get_str(manifest.as_object(), "mediaType");
      if (is_index_type(mtype) || (mtype.empty() && get_arr(manifest.as_object(), "manifests"))) {
        ::unlink((staging + "/" + digest_hex(d)).c_str());  // only the chosen manifest is kept
        PIER_ASSIGN(desc, pick(manifest, false));
        continue;
      }
      break;
    }
    std::string mdigest = get_str(desc, "digest");
    auto& m = manifest.as_object();
    auto* cfg = get_obj(m, "config");
    auto* layers = get_arr(m, "layers");
    if (!cfg || !layers) return Error::invalid("InvalidImage", "manifest " + mdigest + " has no config or layers");
    PIER_TRY(stage_blob(layout, *cfg, staging));
    for (const auto& l : *layers) {
      if (!l.is_object()) return Error::invalid("InvalidImage", "manifest " + mdigest + " has a bad layer");
      PIER_TRY(stage_blob(layout, l.as_object(), staging));
    }
    if (mtype == kDockerManifestType) {
      // Rewritten as an OCI manifest: same config and layer blobs, OCI media types.
      ::unlink((staging + "/" + digest_hex(mdigest)).c_str());
      json::array oci_layers;
      for (const auto& l : *layers) {
        const auto& lo = l.as_object();
        oci_layers.push_back(descriptor(oci_layer_type(get_str(lo, "mediaType")), get_str(lo, "digest"), get_int(lo, "size")));
      }
      json::object oci{{"schemaVersion", 2},
                       {"mediaType", kManifestType},
                       {"config", descriptor(kConfigType, get_str(*cfg, "digest"), get_int(*cfg, "size"))},
                       {"layers", std::move(oci_layers)}};
      mtext = json::serialize(oci);
      PIER_ASSIGN(mdigest, stage_bytes(staging, mtext));
    } else if (!mtype.empty() && mtype != kManifestType) {
      return Error::invalid("InvalidImage", "unsupported manifest media type " + mtype);
    }
    return commit(key, staging, mdigest, static_cast<int64_t>(mtext.size()));
  }();
  remove_tree(staging);
  return out;
}

Result<Image> ImageStore::make_base(const std::string& name, const std::string& busybox) {
  PIER_ASSIGN(ImageRef ref, ImageRef::parse(name));
  if (ref.repository.empty() || !ref.digest.empty())
    return Error::invalid("InvalidParameterException", "an image is made under name[:tag], not a digest: " + name);
  std::string key = ref.name() + ":" + ref.tag;
  struct stat st {};
  if (::stat(busybox.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return Error::not_found("NotFound", busybox + " not found (install Debian's busybox-static)");
  {
    std::ifstream in(busybox, std::ios::binary);
    std::string head(65536, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<size_t>(in.gcount()));
    if (elf_is_dynamic(head))
      return Error::invalid("InvalidParameterException", busybox + " is dynamically linked (install busybox-static)");
  }
  PIER_ASSIGN(std::string list, run_capture({busybox, "--list-full"}));
  const int64_t mtime = st.st_mtime;
  std::set<std::string> dirs{"bin", "dev", "etc", "home", "proc", "root", "run", "sbin", "sys", "tmp", "usr",
                             "usr/bin", "usr/sbin", "var", "var/tmp"};
  std::set<std::string> links;
  for (auto line : str::split(list, '\n')) {
    std::string p(str::trim(line));
    while (!p.empty() && p.front() == '/') p.erase(0, 1);
    if (p.empty() || p == "bin/busybox" || p.find("..") != std::string::npos) continue;
    links.insert(p);
    for (auto s = p.rfind('/'); s != std::string::npos && s > 0; s = p.rfind('/', s - 1))
      dirs.insert(p.substr(0, s));
  }
  links.insert("bin/sh");
  using T = LayerEntry::Type;
  std::vector<LayerEntry> entries;
  for (const auto& d : dirs) {
    uint32_t mode = d == "tmp" || d == "var/tmp" ? 01777 : d == "root" ? 0700 : 0755;
    entries.push_back({T::kDir, d + "/", mode, 0, 0, mtime, {}, {}, {}, 0, 0});
  }
  entries.push_back({T::kFile, "bin/busybox", 0755, 0, 0, mtime, {}, busybox, {}, 0, 0});
  for (const auto& l : links) entries.push_back({T::kSymlink, l, 0777, 0, 0, mtime, {}, {}, "/bin/busybox", 0, 0});
  entries.push_back({T::kFile, "etc/passwd", 0644, 0, 0, mtime,
                     "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", {}, {}, 0, 0});
  entries.push_back({T::kFile, "etc/group", 0644, 0, 0, mtime, "root:x:0:\nnobody:x:65534:\n", {}, {}, 0, 0});

  PIER_ASSIGN(std::string staging, make_staging());
  auto out = [&]() -> Result<Image> {
    std::string tmp = staging + "/layer.tar";
    PIER_TRY(write_layer(tmp, entries, Compression::kNone));
    PIER_ASSIGN(FileDigest layer, digest_file(tmp));
    if (::rename(tmp.c_str(), (staging + "/" + digest_hex(layer.digest)).c_str()) != 0)
      return Error::internal("rename: " + errno_text(errno));
    std::string created = time::iso8601(static_cast<double>(mtime));
    json::object config{
        {"created", created},
        {"architecture", host_architecture()},
        {"os", "linux"},
        {"config", json::object{{"Env", json::array{kDefaultPath}}, {"Cmd", json::array{"sh"}}}},
        {"rootfs", json::object{{"type", "layers"}, {"diff_ids", json::array{json::string(layer.digest)}}}},
        {"history", json::array{json::object{{"created", created}, {"created_by", "pier make_base " + busybox}}}},
    };
    std::string ctext = json::serialize(config);
    PIER_ASSIGN(std::string cdigest, stage_bytes(staging, ctext));
    json::object manifest{
        {"schemaVersion", 2},
        {"mediaType", kManifestType},
        {"config", descriptor(kConfigType, cdigest, static_cast<int64_t>(ctext.size()))},
        {"layers", json::array{descriptor(layer_media_type(Compression::kNone), layer.digest, layer.size)}},
    };
    std::string mtext = json::serialize(manifest);
    PIER_ASSIGN(std::string mdigest, stage_bytes(staging, mtext));
    return commit(key, staging, mdigest, static_cast<int64_t>(mtext.size()));
  }();
  remove_tree(staging);
  return out;
}

Result<Image> ImageStore::resolve(const ImageRef& ref) const {
  std::lock_guard lock(mu_);
  auto with_name = [&](const std::string& digest, const std::string& name) -> Result<Image> {
    auto it = images_.find(digest);
    if (it == images_.end()) return not_found_image(ref.str());
    Image img = it->second;
    img.name = name;
    return img;
  };
  if (!ref.digest.empty()) {
    std::string manifest;
    for (const auto& [d, img] : images_)
      if (d == ref.digest) manifest = d;
    if (manifest.empty())
      for (const auto& [d, img] : images_)
        if (img.config_digest == ref.digest) manifest = d;
    if (manifest.empty()) return not_found_image(ref.str());
    const Entry* best = nullptr;
    auto names = ref.repository.empty() ? std::vector<std::string>{} : candidate_names(ref);
    for (const auto& e : entries_) {
      if (e.digest != manifest || e.ref_name.empty()) continue;
      std::string n = e.ref_name.substr(0, e.ref_name.rfind(':'));
      if (!best || std::find(names.begin(), names.end(), n) != names.end()) {
        bool better = !best || std::find(names.begin(), names.end(),
                                         best->ref_name.substr(0, best->ref_name.rfind(':'))) == names.end();
        if (better) best = &e;
      }
    }
    return with_name(manifest, best ? best->ref_name : "");
  }
  for (const auto& n : candidate_names(ref)) {
    std::string key = n + ":" + ref.tag;
    for (const auto& e : entries_)
      if (e.ref_name == key) return with_name(e.digest, key);
  }
  return not_found_image(ref.str());
}

std::vector<Image> ImageStore::list() const {
  std::lock_guard lock(mu_);
  std::vector<Image> out;
  for (const auto& e : entries_) {
    if (e.ref_name.empty()) continue;
    auto it = images_.find(e.digest);
    if (it == images_.end()) continue;
    out.push_back(it->second);
    out.back().name = e.ref_name;
  }
  std::sort(out.begin(), out.end(), [](const Image& a, const Image& b) { return a.name < b.name; });
  return out;
}

Status ImageStore::remove(const ImageRef& ref) {
  std::lock_guard lock(mu_);
  if (!ref.digest.empty()) {
    std::string manifest;
    for (const auto& [d, img] : images_)
      if (d == ref.digest || img.config_digest == ref.digest) manifest = d;
    if (manifest.empty() ||
        std::none_of(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.digest == manifest; }))
      return not_found_image(ref.str());
    std::erase_if(entries_, [&](const Entry& e) { return e.digest == manifest; });
    images_.erase(manifest);
  } else {
    auto names = candidate_names(ref);
    auto it = entries_.end();
    for (const auto& n : names) {
      it = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.ref_name == n + ":" + ref.tag; });
      if (it != entries_.end()) break;
    }
    if (it == entries_.end()) return not_found_image(ref.str());
    std::string digest = it->digest;
    entries_.erase(it);
    if (std::none_of(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.digest == digest; }))
      images_.erase(digest);
  }
  PIER_TRY(write_index_locked());
  return gc_locked();
}

Result<int> ImageStore::prune() {
  std::lock_guard lock(mu_);
  int n = 0;
  std::erase_if(entries_, [&](const Entry& e) {
    if (!e.ref_name.empty()) return false;
    images_.erase(e.digest);
    ++n;
    return true;
  });
  PIER_TRY(write_index_locked());
  PIER_TRY(gc_locked());
  return n;
}

Result<std::vector<std::string>> ImageStore::layer_dirs(const Image& image) {
  if (image.layers.size() != image.diff_ids.size())
    return Error::invalid("InvalidImage", "image " + image.digest + ": layers and diff ids differ in number");
  std::vector<std::string> out;
  for (size_t i = 0; i < image.layers.size(); ++i) {
    const std::string& diff_id = image.diff_ids[i];
    if (!is_digest(diff_id) || !is_digest(image.layers[i]))
      return Error::invalid("InvalidImage", "image " + image.digest + ": bad layer digest");
    std::string target = dir_ + "/layers/" + digest_hex(diff_id);
    if (fs::is_directory(target)) {
      out.push_back(target);
      continue;
    }
    std::string blob = blob_path(image.layers[i]);
    if (!fs::exists(blob)) return Error::not_found("ImageNotFound", "layer blob " + image.layers[i] + " is missing");
    std::string tmp = dir_ + "/tmp/unpack-" + random_suffix();
    if (::mkdir(tmp.c_str(), 0755) != 0) return Error::internal("mkdir " + tmp + ": " + errno_text(errno));
    ::chmod(tmp.c_str(), 0755);  // the container's root directory: not the umask's
    auto info = unpack_layer(blob, tmp);
    if (!info) {
      remove_tree(tmp);
      return std::move(info).error();
    }
    if (info->diff_id != diff_id) {
      remove_tree(tmp);
      return Error::invalid("InvalidImage", "layer " + image.layers[i] + " unpacks to " + info->diff_id +
                                                ", not the diff id " + diff_id);
    }
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
      int e = errno;
      remove_tree(tmp);
      if ((e != EEXIST && e != ENOTEMPTY) || !fs::is_directory(target))
        return Error::internal("rename " + tmp + " to " + target + ": " + errno_text(e));
    }
    out.push_back(target);
  }
  return out;
}

}  // namespace pier::runtime

#include "runtime/layers.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>

#include "common/log.h"
#include "common/strings.h"

namespace pier::runtime {
namespace {

constexpr size_t kBufSize = 1 << 16;

std::string errno_text(int e) { return std::strerror(e); }

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* p, size_t n) {
    if (n > 0) EVP_DigestUpdate(ctx_, p, n);
  }
  // "sha256:<hex>"
  std::string finish() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    return "sha256:" + str::hex(std::string_view(reinterpret_cast<char*>(md), len));
  }

 private:
  EVP_MD_CTX* ctx_;
};

struct ReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct WriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
using ReadPtr = std::unique_ptr<archive, ReadFree>;
using WritePtr = std::unique_ptr<archive, WriteFree>;

std::string arch_error(archive* a) {
  const char* s = archive_error_string(a);
  return s ? s : "unknown libarchive error";
}

// The decompressed byte stream of a blob (any filter libarchive knows, format
// "raw"), hashed as it is read; a tar reader reads from it through read_cb.
struct Stream {
  ReadPtr raw;
  Sha256 hash;
  Compression compression = Compression::kNone;
  std::string error;
  char buf[kBufSize];
};

la_ssize_t stream_read(archive* a, void* ud, const void** out) {
  auto* s = static_cast<Stream*>(ud);
  la_ssize_t n = archive_read_data(s->raw.get(), s->buf, sizeof s->buf);
  if (n < 0) {
    s->error = arch_error(s->raw.get());
    archive_set_error(a, EIO, "%s", s->error.c_str());
    return -1;
  }
  s->hash.update(s->buf, static_cast<size_t>(n));
  *out = s->buf;
  return n;
}

Result<std::unique_ptr<Stream>> open_stream(const std::string& blob) {
  auto s = std::make_unique<Stream>();
  s->raw.reset(archive_read_new());
  archive_read_support_filter_all(s->raw.get());
  archive_read_support_format_raw(s->raw.get());
  if (archive_read_open_filename(s->raw.get(), blob.c_str(), kBufSize) != ARCHIVE_OK)
    return Error::invalid("InvalidLayer", blob + ": " + arch_error(s->raw.get()));
  archive_entry* e = nullptr;
  int r = archive_read_next_header(s->raw.get(), &e);
  if (r == ARCHIVE_EOF) return Error::invalid("InvalidLayer", blob + ": empty");
  if (r != ARCHIVE_OK) return Error::invalid("InvalidLayer", blob + ": " + arch_error(s->raw.get()));
  switch (archive_filter_code(s->raw.get(), 0)) {
    case ARCHIVE_FILTER_NONE: s->compression = Compression::kNone; break;
    case ARCHIVE_FILTER_GZIP: s->compression = Compression::kGzip; break;
    case ARCHIVE_FILTER_ZSTD: s->compression = Compression::kZstd; break;
    default: s->compression = Compression::kOther; break;
  }
  return s;
}

Result<ReadPtr> open_tar(Stream* s, const std::string& blob) {
  ReadPtr tar(archive_read_new());
  archive_read_support_format_tar(tar.get());
  if (archive_read_open(tar.get(), s, nullptr, stream_read, nullptr) != ARCHIVE_OK)
    return Error::invalid("InvalidLayer", blob + ": not a tar archive: " + arch_error(tar.get()));
  return tar;
}

// Hashes what the tar reader left of the stream (end-of-archive padding).
Status drain(Stream* s) {
  for (;;) {
    la_ssize_t n = archive_read_data(s->raw.get(), s->buf, sizeof s->buf);
    if (n < 0) return Error::invalid("InvalidLayer", arch_error(s->raw.get()));
    if (n == 0) return {};
    s->hash.update(s->buf, static_cast<size_t>(n));
  }
}

// Drops leading "/" and "./" and trailing "/"; "" for the root itself.
std::string clean_path(std::string_view p) {
  for (;;) {
    if (p.starts_with("/")) {
      p.remove_prefix(1);
    } else if (p.starts_with("./")) {
      p.remove_prefix(2);
    } else {
      break;
    }
  }
  if (p == ".") p = {};
  while (p.ends_with("/")) p.remove_suffix(1);
  return std::string(p);
}

bool has_dotdot(std::string_view p) {
  for (auto c : str::split(p, '/'))
    if (c == "..") return true;
  return false;
}

// Opens directory REL under ROOTFD, component by component, never following a
// symlink, creating missing directories (0755).
Result<int> open_dir_beneath(int rootfd, const std::string& rel) {
  int fd = dup(rootfd);
  if (fd < 0) return Error::internal("dup: " + errno_text(errno));
  if (rel.empty()) return fd;
  for (auto c : str::split(rel, '/')) {
    if (c.empty() || c == ".") continue;
    std::string name(c);
    int next = openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT) {
      if (mkdirat(fd, name.c_str(), 0755) != 0 && errno != EEXIST) {
        int e = errno;
        close(fd);
        return Error::internal("mkdir " + rel + ": " + errno_text(e));
      }
      next = openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    int e = errno;
    close(fd);
    if (next < 0)
      return Error::invalid("InvalidLayer", "cannot open directory " + rel + " in the layer: " + errno_text(e));
    fd = next;
  }
  return fd;
}

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// An overlayfs whiteout for PARENT/BASE (BASE starts with ".wh.").
Status whiteout(int rootfd, const std::string& parent, const std::string& base, archive_entry* e) {
  PIER_ASSIGN(int dfd, open_dir_beneath(rootfd, parent));
  Fd dir(dfd);
  if (base == ".wh..wh..opq") {
    if (fsetxattr(dir.fd, "trusted.overlay.opaque", "y", 1, 0) != 0) {
      int err = errno;
      if (geteuid() != 0) {
        log::get("runtime")->warn("opaque whiteout on {}/ skipped (not root): {}", parent, errno_text(err));
        return {};
      }
      return Error::internal("setxattr trusted.overlay.opaque on " + parent + ": " + errno_text(err));
    }
    return {};
  }
  if (base.starts_with(".wh..wh.")) return {};  // aufs metadata (.wh..wh.plnk, ...): not for overlayfs
  std::string name = base.substr(4);
  if (name.empty() || name == "." || name == "..")
    return Error::invalid("InvalidLayer", "bad whiteout " + parent + "/" + base);
  if (mknodat(dir.fd, name.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
    if (errno == EEXIST) {
      if (unlinkat(dir.fd, name.c_str(), 0) != 0 && unlinkat(dir.fd, name.c_str(), AT_REMOVEDIR) != 0)
        return Error::internal("whiteout " + parent + "/" + name + ": " + errno_text(errno));
      if (mknodat(dir.fd, name.c_str(), S_IFCHR | 0, makedev(0, 0)) == 0) return {};
    }
    return Error::internal("mknod whiteout " + parent + "/" + name + ": " + errno_text(errno));
  }
  // The whiteout keeps the archive's ownership (as other tools do); failure is harmless.
  if (fchownat(dir.fd, name.c_str(), static_cast<uid_t>(archive_entry_uid(e)),
               static_cast<gid_t>(archive_entry_gid(e)), AT_SYMLINK_NOFOLLOW) != 0) {
    // not root: leave it
  }
  return {};
}

// Removes trusted.overlay.* xattrs from an entry: a layer must not smuggle in
// overlayfs metadata (redirects, opaque marks) other than by whiteouts.
void filter_xattrs(archive_entry* e) {
  if (archive_entry_xattr_count(e) == 0) return;
  std::vector<std::pair<std::string, std::string>> keep;
  bool dropped = false;
  archive_entry_xattr_reset(e);
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    std::string n = name ? name : "";
    if (n.starts_with("trusted.overlay.")) {
      dropped = true;
      continue;
    }
    keep.emplace_back(n, std::string(static_cast<const char*>(value), size));
  }
  if (!dropped) return;
  archive_entry_xattr_clear(e);
  for (auto& [n, v] : keep) archive_entry_xattr_add_entry(e, n.c_str(), v.data(), v.size());
}

Result<LayerInfo> unpack_here(const std::string& blob, int rootfd) {
  PIER_ASSIGN(auto s, open_stream(blob));
  PIER_ASSIGN(auto tar, open_tar(s.get(), blob));
  WritePtr disk(archive_write_disk_new());
  archive_write_disk_set_options(
      disk.get(), ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                      ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                      ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
  LayerInfo info;
  info.compression = s->compression;
  archive_entry* e = nullptr;
  for (;;) {
    int r = archive_read_next_header(tar.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN)
      return Error::invalid("InvalidLayer", blob + ": " + (s->error.empty() ? arch_error(tar.get()) : s->error));
    ++info.entries;
    const char* raw_path = archive_entry_pathname(e);
    std::string path = clean_path(raw_path ? raw_path : "");
    if (path.empty()) continue;  // the root directory itself
    if (has_dotdot(path)) return Error::invalid("InvalidLayer", "layer entry escapes the root: " + std::string(raw_path));
    auto slash = path.rfind('/');
    std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
    if (base.starts_with(".wh.")) {
      PIER_TRY(whiteout(rootfd, parent, base, e));
      continue;
    }
    archive_entry_set_pathname(e, path.c_str());
    if (const char* hl = archive_entry_hardlink(e)) {
      std::string target = clean_path(hl);
      if (target.empty() || has_dotdot(target))
        return Error::invalid("InvalidLayer", "hard link escapes the root: " + path + " -> " + hl);
      archive_entry_set_hardlink(e, target.c_str());
    }
    filter_xattrs(e);
    r = archive_write_header(disk.get(), e);
    if (r < ARCHIVE_WARN)
      return Error::invalid("InvalidLayer", "cannot unpack " + path + ": " + arch_error(disk.get()));
    if (r == ARCHIVE_WARN)
      log::get("runtime")->debug("unpack {}: {}", path, arch_error(disk.get()));
    if (archive_entry_size(e) > 0) {
      const void* buf = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      for (;;) {
        r = archive_read_data_block(tar.get(), &buf, &size, &offset);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) return Error::invalid("InvalidLayer", blob + ": " + arch_error(tar.get()));
        if (archive_write_data_block(disk.get(), buf, size, offset) < ARCHIVE_WARN)
          return Error::internal("write " + path + ": " + arch_error(disk.get()));
      }
    }
    if (archive_write_finish_entry(disk.get()) < ARCHIVE_WARN)
      return Error::internal("finish " + path + ": " + arch_error(disk.get()));
  }
  if (archive_write_close(disk.get()) < ARCHIVE_WARN)
    return Error::internal("unpack " + blob + ": " + arch_error(disk.get()));
  PIER_TRY(drain(s.get()));
  info.diff_id = s->hash.finish();
  return info;
}

}  // namespace

Result<Compression> detect_compression(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::not_found("NotFound", path + ": " + errno_text(errno));
  unsigned char b[6] = {0};
  ssize_t n = read(fd, b, sizeof b);
  close(fd);
  if (n < 0) return Error::internal(path + ": " + errno_text(errno));
  if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) return Compression::kGzip;
  if (n >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) return Compression::kZstd;
  if (n >= 6 && b[0] == 0xfd && b[1] == '7' && b[2] == 'z' && b[3] == 'X' && b[4] == 'Z') return Compression::kOther;
  if (n >= 3 && b[0] == 'B' && b[1] == 'Z' && b[2] == 'h') return Compression::kOther;
  return Compression::kNone;
}

std::string layer_media_type(Compression c) {
  switch (c) {
    case Compression::kGzip: return "application/vnd.oci.image.layer.v1.tar+gzip";
    case Compression::kZstd: return "application/vnd.oci.image.layer.v1.tar+zstd";
    default: return "application/vnd.oci.image.layer.v1.tar";
  }
}

Result<LayerInfo> inspect_layer(const std::string& blob,
                                const std::function<void(std::string_view)>& on_entry) {
  PIER_ASSIGN(auto s, open_stream(blob));
  PIER_ASSIGN(auto tar, open_tar(s.get(), blob));
  LayerInfo info;
  info.compression = s->compression;
  archive_entry* e = nullptr;
  for (;;) {
    int r = archive_read_next_header(tar.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN)
      return Error::invalid("InvalidLayer", blob + ": " + (s->error.empty() ? arch_error(tar.get()) : s->error));
    ++info.entries;
    if (on_entry) {
      const char* p = archive_entry_pathname(e);
      on_entry(p ? p : "");
    }
    if (archive_read_data_skip(tar.get()) < ARCHIVE_WARN)
      return Error::invalid("InvalidLayer", blob + ": " + arch_error(tar.get()));
  }
  PIER_TRY(drain(s.get()));
  info.diff_id = s->hash.finish();
  return info;
}

Result<LayerInfo> unpack_layer(const std::string& blob, const std::string& dir) {
  Result<LayerInfo> out = Error::internal("unpack did not run");
  // A thread of its own with its own cwd: unshare(CLONE_FS) detaches this
  // thread's working directory and umask from the rest of the process.
  std::thread worker([&] {
    if (unshare(CLONE_FS) != 0) {
      out = Error::internal("unshare(CLONE_FS): " + errno_text(errno));
      return;
    }
    umask(022);
    int rootfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
      out = Error::not_found("NotFound", dir + ": " + errno_text(errno));
      return;
    }
    Fd root(rootfd);
    if (fchdir(rootfd) != 0) {
      out = Error::internal("chdir " + dir + ": " + errno_text(errno));
      return;
    }
    out = unpack_here(blob, rootfd);
  });
  worker.join();
  return out;
}

Status write_layer(const std::string& out, const std::vector<LayerEntry>& entries, Compression compression) {
  WritePtr w(archive_write_new());
  if (archive_write_set_format_pax_restricted(w.get()) != ARCHIVE_OK)
    return Error::internal(arch_error(w.get()));
  int r = ARCHIVE_OK;
  switch (compression) {
    case Compression::kNone: r = archive_write_add_filter_none(w.get()); break;
    case Compression::kGzip: r = archive_write_add_filter_gzip(w.get()); break;
    case Compression::kZstd: r = archive_write_add_filter_zstd(w.get()); break;
    default: return Error::invalid("InvalidParameterException", "unsupported layer compression");
  }
  if (r != ARCHIVE_OK) return Error::internal("layer filter: " + arch_error(w.get()));
  if (archive_write_open_filename(w.get(), out.c_str()) != ARCHIVE_OK)
    return Error::internal(out + ": " + arch_error(w.get()));
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
  std::vector<char> buf(kBufSize);
  for (const auto& le : entries) {
    archive_entry_clear(e.get());
    archive_entry_set_pathname(e.get(), le.path.c_str());
    archive_entry_set_perm(e.get(), le.mode & 07777);
    archive_entry_set_uid(e.get(), le.uid);
    archive_entry_set_gid(e.get(), le.gid);
    archive_entry_set_mtime(e.get(), le.mtime, 0);
    int src = -1;
    switch (le.type) {
      case LayerEntry::Type::kFile: {
        archive_entry_set_filetype(e.get(), AE_IFREG);
        if (!le.source.empty()) {
          src = open(le.source.c_str(), O_RDONLY | O_CLOEXEC);
          if (src < 0) return Error::not_found("NotFound", le.source + ": " + errno_text(errno));
          struct stat st {};
          fstat(src, &st);
          archive_entry_set_size(e.get(), st.st_size);
        } else {
          archive_entry_set_size(e.get(), static_cast<la_int64_t>(le.data.size()));
        }
        break;
      }
      case LayerEntry::Type::kDir: archive_entry_set_filetype(e.get(), AE_IFDIR); break;
      case LayerEntry::Type::kSymlink:
        archive_entry_set_filetype(e.get(), AE_IFLNK);
        archive_entry_set_symlink(e.get(), le.link.c_str());
        break;
      case LayerEntry::Type::kHardlink:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_hardlink(e.get(), le.link.c_str());
        archive_entry_set_size(e.get(), 0);
        break;
      case LayerEntry::Type::kCharDevice:
      case LayerEntry::Type::kBlockDevice:
        archive_entry_set_filetype(e.get(), le.type == LayerEntry::Type::kCharDevice ? AE_IFCHR : AE_IFBLK);
        archive_entry_set_rdevmajor(e.get(), le.rdev_major);
        archive_entry_set_rdevminor(e.get(), le.rdev_minor);
        break;
      case LayerEntry::Type::kFifo: archive_entry_set_filetype(e.get(), AE_IFIFO); break;
    }
    Fd src_fd(src);
    if (archive_write_header(w.get(), e.get()) < ARCHIVE_WARN)
      return Error::internal(le.path + ": " + arch_error(w.get()));
    if (le.type == LayerEntry::Type::kFile) {
      if (src >= 0) {
        for (;;) {
          ssize_t n = read(src, buf.data(), buf.size());
          if (n < 0) return Error::internal(le.source + ": " + errno_text(errno));
          if (n == 0) break;
          if (archive_write_data(w.get(), buf.data(), static_cast<size_t>(n)) < 0)
            return Error::internal(le.path + ": " + arch_error(w.get()));
        }
      } else if (!le.data.empty()) {
        if (archive_write_data(w.get(), le.data.data(), le.data.size()) < 0)
          return Error::internal(le.path + ": " + arch_error(w.get()));
      }
    }
    if (archive_write_finish_entry(w.get()) < ARCHIVE_WARN)
      return Error::internal(le.path + ": " + arch_error(w.get()));
  }
  if (archive_write_close(w.get()) != ARCHIVE_OK) return Error::internal(out + ": " + arch_error(w.get()));
  return {};
}

Result<FileDigest> copy_file_digest(const std::string& src, const std::string& dst) {
  int in = open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Error::not_found("NotFound", src + ": " + errno_text(errno));
  Fd in_fd(in);
  int out = -1;
  if (!dst.empty()) {
    out = open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) return Error::internal(dst + ": " + errno_text(errno));
  }
  Fd out_fd(out);
  Sha256 h;
  FileDigest d;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = read(in, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::internal(src + ": " + errno_text(errno));
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
    d.size += n;
    for (ssize_t done = 0; out >= 0 && done < n;) {
      ssize_t m = write(out, buf.data() + done, static_cast<size_t>(n - done));
      if (m < 0) {
        if (errno == EINTR) continue;
        return Error::internal(dst + ": " + errno_text(errno));
      }
      done += m;
    }
  }
  d.digest = h.finish();
  return d;
}

Result<FileDigest> digest_file(const std::string& path) { return copy_file_digest(path, ""); }

}  // namespace pier::runtime

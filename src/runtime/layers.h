// Layer blobs (tar, tar+gzip, tar+zstd) with libarchive: inspecting, unpacking
// into a directory in overlayfs form, and writing a layer tar from a list of
// entries.
//
// Unpacking never changes the process's working directory (pierd is
// multithreaded): the work runs on a short-lived thread of its own that
// unshare(CLONE_FS)s and fchdir()s into the target, so only that thread's cwd
// moves. A leading "/" or "./" on a path is dropped (paths are relative to
// the layer root); an entry is refused, failing the unpack with Error::invalid,
// when its path or hard-link target has a ".." component or its final location
// would be reached through a symlink on disk (libarchive's
// ARCHIVE_EXTRACT_SECURE_NODOTDOT, _SECURE_SYMLINKS and _SECURE_NOABSOLUTEPATHS
// are on as well). trusted.overlay.* xattrs in the archive are dropped.
//
// Whiteouts become overlayfs whiteouts: ".wh.NAME" is a character device 0:0
// named NAME; ".wh..wh..opq" sets trusted.overlay.opaque=y on its directory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pier::runtime {

enum class Compression { kNone, kGzip, kZstd, kOther };

// By the file's first bytes (gzip 1f 8b, zstd 28 b5 2f fd, xz, bzip2 → kOther).
Result<Compression> detect_compression(const std::string& path);
// The OCI layer media type for a compression ("application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]").
std::string layer_media_type(Compression c);

struct LayerInfo {
  std::string diff_id;  // "sha256:<hex>" of the uncompressed tar stream
  Compression compression = Compression::kNone;
  int64_t entries = 0;
};

// Reads the whole layer without writing anything: checks it is a tar (possibly
// compressed) and computes its diff id. ON_ENTRY, if given, sees each entry's
// pathname as stored in the archive.
Result<LayerInfo> inspect_layer(const std::string& blob,
                                const std::function<void(std::string_view)>& on_entry = {});

// Unpacks BLOB into DIR (which must exist; normally empty). Returns what
// inspect_layer would. On error DIR may hold part of the layer: unpack into a
// temporary directory and rename it into place (ImageStore does).
Result<LayerInfo> unpack_layer(const std::string& blob, const std::string& dir);

// One entry of a layer to write.
struct LayerEntry {
  enum class Type { kFile, kDir, kSymlink, kHardlink, kCharDevice, kBlockDevice, kFifo };
  Type type = Type::kFile;
  std::string path;    // relative to the layer root: "bin/busybox"
  uint32_t mode = 0;   // permission bits (07777); the type comes from TYPE
  int64_t uid = 0;
  int64_t gid = 0;
  int64_t mtime = 0;   // seconds since the epoch
  std::string data;    // kFile: the content, unless SOURCE is set
  std::string source;  // kFile: a host file whose content to copy
  std::string link;    // kSymlink: the target; kHardlink: the path of the earlier entry
  uint32_t rdev_major = 0, rdev_minor = 0;  // devices
};

// Writes ENTRIES, in order, as a pax tar to OUT with the given compression
// (kNone, kGzip or kZstd). Parent directories are not added implicitly.
Status write_layer(const std::string& out, const std::vector<LayerEntry>& entries,
                   Compression compression = Compression::kNone);

// "sha256:<hex>" of a file's bytes, and its size.
struct FileDigest {
  std::string digest;
  int64_t size = 0;
};
Result<FileDigest> digest_file(const std::string& path);
// Copies SRC to DST (created, mode 0644) while hashing it.
Result<FileDigest> copy_file_digest(const std::string& src, const std::string& dst);

}  // namespace pier::runtime

// The content-addressed image store: an OCI image layout on disk (oci-layout,
// index.json, blobs/sha256/<hex>) plus the unpacked layers that containers use
// as overlayfs lower directories (layers/<diff id hex>/).
//
// index.json lists one manifest descriptor per tag, annotated
// "org.opencontainers.image.ref.name" = the full "name:tag" (registry prefix
// kept as given). A manifest whose tag moved away (re-import of a name) stays
// in index.json without that annotation — "dangling", still resolvable by
// digest, so that running containers keep their layers — until prune() or
// remove() by its digest. Blobs and unpacked layers that no manifest in
// index.json refers to are deleted by remove() and prune().
//
// Thread-safe: one mutex guards the index; imports stage their blobs under
// DIR/tmp/ unlocked and move them in under the lock; layers are unpacked into
// DIR/tmp/ and renamed into place, so two threads unpacking the same layer at
// once both succeed and one copy wins.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pier::runtime {

struct LayerInfo;  // runtime/layers.h

// A reference as ECS task definitions spell images: "name", "name:tag",
// "registry/name:tag", "registry:5000/a/b:tag", "name@sha256:<64hex>",
// "name:tag@sha256:<64hex>", "docker.io/library/busybox:latest"; and a bare
// digest "sha256:<64hex>" (or 64 hex digits), which has an empty repository.
// The first path component is the registry when it has a '.' or a ':' or is
// "localhost" (Docker's rule). Repository components are lower case
// [a-z0-9] separated by '.', '_', '__' or '-'s; tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
struct ImageRef {
  std::string registry;    // "" for a bare name
  std::string repository;  // "busybox", "a/b"; "" for a bare digest
  std::string tag;         // "latest" when neither tag nor digest was given
  std::string digest;      // "sha256:…" or ""

  static Result<ImageRef> parse(std::string_view s);  // Error::invalid on malformed input
  std::string name() const;  // registry/repository (no tag)
  std::string str() const;   // canonical full form: name[:tag][@digest], or the digest alone
};

struct Image {
  std::string name;           // "repository:tag" as stored (registry/ prefix kept if given); "" if dangling
  std::string digest;         // manifest digest "sha256:…"
  std::string config_digest;
  std::string architecture;   // from the config: "amd64", "arm64", …
  std::string os;
  std::vector<std::string> layers;    // layer blob digests, lowest first
  std::vector<std::string> diff_ids;  // the layers' uncompressed digests, lowest first
  boost::json::object config;  // the image config's "config" member (Env, Cmd, Entrypoint, WorkingDir, User)
  int64_t size = 0;            // sum of layer blob sizes
  int64_t created_ms = 0;      // the config's "created", in ms since the epoch (0 if absent)
};

class ImageStore {
 public:
  // DIR is an OCI image layout, made if missing; unpacked layers go under
  // DIR/layers/<diff id hex>/. Leftovers in DIR/tmp/ are removed, so one
  // ImageStore per directory at a time (pierd's home lock sees to that).
  static Result<std::unique_ptr<ImageStore>> open(const std::string& dir);
  ~ImageStore();

  // Imports PATH as NAME[:TAG] (no digest). PATH is either
  //  - a root-filesystem tarball (plain tar, gzip or zstd, detected by
  //    content), stored as one layer, config Env PATH=… and the host's
  //    architecture; or
  //  - an OCI image layout directory; or
  //  - an OCI image layout packed as a tar (oci-layout and index.json at its top).
  // From an OCI layout with several manifests (or an image index) it takes the
  // one whose ref.name annotation is the tag (or ends in ":tag", or is the full
  // name), else the only one, else the first for the host's architecture, else
  // the first. Blobs are checked against their digests and sizes. Docker
  // schema-2 manifests are rewritten as OCI manifests. Re-importing a name moves the tag.
  Result<Image> import(const std::string& name, const std::string& path);

  // A small image built offline from the host's busybox-static: bin/busybox, a
  // symlink (-> /bin/busybox) for every applet of `busybox --list-full`,
  // bin/sh, etc/passwd (root, nobody), etc/group, tmp (1777), root (0700) and
  // empty dev, proc, sys, etc. Config: Cmd ["sh"], Env PATH=…, the host's
  // architecture. Reproducible: times are busybox's mtime, so making it twice
  // from the same busybox gives the same digest.
  Result<Image> make_base(const std::string& name, const std::string& busybox = "/bin/busybox");

  // By reference: name[:tag], registry/name[:tag], name@sha256:…, or a bare
  // manifest digest (a config digest, i.e. the image id, is accepted too).
  // "docker.io/library/x" (or "index.docker.io/…", "docker.io/x") and "x" find each other.
  // By digest, a name given with it only chooses which of the digest's tags Image::name reports.
  // Error::not_found (code "ImageNotFound") if absent.
  Result<Image> resolve(const ImageRef& ref) const;
  // Every tagged image, by name.
  std::vector<Image> list() const;
  // Removes the tag (or, by digest, every tag of it and the manifest itself);
  // then blobs and unpacked layers no manifest refers to. Error::not_found if absent.
  Status remove(const ImageRef& ref);
  // Drops dangling manifests and what only they used. Returns how many manifests went.
  Result<int> prune();

  // The unpacked directory of each layer, lowest first, unpacking any missing
  // one now (checking its diff id). Whiteouts are in overlayfs form.
  Result<std::vector<std::string>> layer_dirs(const Image& image);

  const std::string& dir() const { return dir_; }

 private:
  struct Entry {
    std::string ref_name;  // "" when dangling
    std::string digest;
    int64_t size = 0;
  };
  explicit ImageStore(std::string dir);
  Status load();
  Status write_index_locked();
  Status gc_locked();
  std::string blob_path(std::string_view digest) const;
  Result<Image> load_image(const std::string& digest) const;
  Result<std::string> make_staging();
  // Moves staged blobs in and points NAME at MANIFEST_DIGEST.
  Result<Image> commit(const std::string& name, const std::string& staging, const std::string& manifest_digest,
                       int64_t manifest_size);
  Result<Image> import_layout(const std::string& name, const std::string& layout);
  Result<Image> import_rootfs(const std::string& name, const std::string& tarball, const LayerInfo& info);

  std::string dir_;
  mutable std::mutex mu_;
  std::vector<Entry> entries_;            // index.json's manifests, in order
  std::map<std::string, Image> images_;   // by manifest digest (name left empty)
};

// The host's architecture as OCI spells it ("amd64", "arm64", …).
std::string host_architecture();

}  // namespace pier::runtime

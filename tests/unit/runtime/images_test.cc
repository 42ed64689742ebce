#include "runtime/images.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/crypto.h"
#include "common/strings.h"
#include "runtime/layers.h"

namespace pier::runtime {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using T = LayerEntry::Type;

const std::string kHex(64, 'a');

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "pier-images-test-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& s) const { return path + "/" + s; }
};

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void spit(const std::string& p, std::string_view data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string digest_of(std::string_view data) { return "sha256:" + str::hex(crypto::sha256(data)); }

LayerEntry dir(const std::string& p, uint32_t mode = 0755) { return {T::kDir, p, mode, 0, 0, 1700000000, {}, {}, {}, 0, 0}; }
LayerEntry file(const std::string& p, const std::string& data, uint32_t mode = 0644, int64_t uid = 0) {
  return {T::kFile, p, mode, uid, uid, 1700000000, data, {}, {}, 0, 0};
}
LayerEntry symlink_to(const std::string& p, const std::string& target) {
  return {T::kSymlink, p, 0777, 0, 0, 1700000000, {}, {}, target, 0, 0};
}
LayerEntry hardlink_to(const std::string& p, const std::string& target) {
  return {T::kHardlink, p, 0644, 0, 0, 1700000000, {}, {}, target, 0, 0};
}

std::unique_ptr<ImageStore> open_store(const TempDir& t) {
  auto s = ImageStore::open(t / "store");
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  return s.ok() ? std::move(s).value() : nullptr;
}

ImageRef parse_ref(const std::string& s) {
  auto r = ImageRef::parse(s);
  EXPECT_TRUE(r.ok()) << s;
  return r.ok() ? r.value() : ImageRef{};
}

std::string blob_file(const TempDir& t, const std::string& digest) { return t / ("store/blobs/sha256/" + digest.substr(7)); }

// Writes an OCI layout with one manifest made of LAYERS (tar files on disk).
struct Layout {
  std::string manifest_digest;
  std::vector<std::string> layer_digests;
};
Layout write_layout(const std::string& dir, const std::vector<std::string>& layer_files,
                    const std::vector<std::string>& diff_ids, const std::string& ref_name,
                    const std::string& arch = host_architecture()) {
  fs::create_directories(dir + "/blobs/sha256");
  spit(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  Layout out;
  json::array layers;
  for (const auto& f : layer_files) {
    std::string data = slurp(f);
    std::string d = digest_of(data);
    spit(dir + "/blobs/sha256/" + d.substr(7), data);
    auto c = detect_compression(f);
    layers.push_back(json::object{{"mediaType", layer_media_type(c.value())}, {"digest", d},
                                  {"size", static_cast<int64_t>(data.size())}});
    out.layer_digests.push_back(d);
  }
  json::array ids;
  for (const auto& d : diff_ids) ids.push_back(json::string(d));
  std::string config = json::serialize(json::object{
      {"architecture", arch},
      {"os", "linux"},
      {"created", "2024-05-01T12:00:00.5Z"},
      {"config", json::object{{"Cmd", json::array{"/bin/true"}}, {"WorkingDir", "/w"}}},
      {"rootfs", json::object{{"type", "layers"}, {"diff_ids", ids}}}});
  std::string cd = digest_of(config);
  spit(dir + "/blobs/sha256/" + cd.substr(7), config);
  std::string manifest = json::serialize(json::object{
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config", json::object{{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", cd},
                              {"size", static_cast<int64_t>(config.size())}}},
      {"layers", layers}});
  out.manifest_digest = digest_of(manifest);
  spit(dir + "/blobs/sha256/" + out.manifest_digest.substr(7), manifest);
  json::object desc{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                    {"digest", out.manifest_digest},
                    {"size", static_cast<int64_t>(manifest.size())}};
  if (!ref_name.empty()) desc["annotations"] = json::object{{"org.opencontainers.image.ref.name", ref_name}};
  spit(dir + "/index.json", json::serialize(json::object{{"schemaVersion", 2}, {"manifests", json::array{desc}}}));
  return out;
}

// ---------------------------------------------------------------- ImageRef

TEST(ImageRef, ParsesGoodReferences) {
  struct Case {
    std::string in, registry, repository, tag, digest, str;
  };
  std::string d = "sha256:" + kHex;
  std::vector<Case> cases = {
      {"busybox", "", "busybox", "latest", "", "busybox:latest"},
      {"busybox:1.36", "", "busybox", "1.36", "", "busybox:1.36"},
      {"a/b", "", "a/b", "latest", "", "a/b:latest"},
      {"docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", "",
       "docker.io/library/busybox:latest"},
      {"registry:5000/a/b:tag", "registry:5000", "a/b", "tag", "", "registry:5000/a/b:tag"},
      {"localhost/app", "localhost", "app", "latest", "", "localhost/app:latest"},
      {"123456789012.dkr.ecr.us-east-1.amazonaws.com/my-app:v1.2_3", "123456789012.dkr.ecr.us-east-1.amazonaws.com",
       "my-app", "v1.2_3", "", "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-app:v1.2_3"},
      {"public.ecr.aws/docker/library/nginx:1-alpine", "public.ecr.aws", "docker/library/nginx", "1-alpine", "",
       "public.ecr.aws/docker/library/nginx:1-alpine"},
      {"name@" + d, "", "name", "", d, "name@" + d},
      {"name:tag@" + d, "", "name", "tag", d, "name:tag@" + d},
      {"reg.example:443/x/y@" + d, "reg.example:443", "x/y", "", d, "reg.example:443/x/y@" + d},
      {d, "", "", "", d, d},
      {kHex, "", "", "", d, d},
      {"a_b__c-d--e.f", "", "a_b__c-d--e.f", "latest", "", "a_b__c-d--e.f:latest"},
  };
  for (const auto& c : cases) {
    auto r = ImageRef::parse(c.in);
    ASSERT_TRUE(r.ok()) << c.in << ": " << r.error().message;
    EXPECT_EQ(r->registry, c.registry) << c.in;
    EXPECT_EQ(r->repository, c.repository) << c.in;
    EXPECT_EQ(r->tag, c.tag) << c.in;
    EXPECT_EQ(r->digest, c.digest) << c.in;
    EXPECT_EQ(r->str(), c.str) << c.in;
  }
  EXPECT_EQ(parse_ref("registry:5000/a/b:tag").name(), "registry:5000/a/b");
  EXPECT_EQ(parse_ref("busybox").name(), "busybox");
}

TEST(ImageRef, RejectsMalformedReferences) {
  for (const std::string& bad : std::vector<std::string>{"", "Busybox", "UPPER/x", "a:b:c", "name:", ":tag", "a//b", "-a", "a-", "a/", "/a",
                          "name:tag!", "name:.x", "name@sha256:abc", "name@md5:" + kHex, "name@", "@sha256:" + kHex,
                          "reg:po/x", "a..b", "a b", "name:" + std::string(129, 't'), "sha256:" + kHex.substr(1) + "G"}) {
    auto r = ImageRef::parse(bad);
    EXPECT_FALSE(r.ok()) << "accepted \"" << bad << "\"";
    if (!r.ok()) {
      EXPECT_EQ(r.error().kind, ErrorKind::kInvalid) << bad;
    }
  }
}

// ---------------------------------------------------------------- make_base

TEST(ImageMakeBase, BusyboxImageHasShellAndApplets) {
  if (!fs::exists("/bin/busybox")) GTEST_SKIP() << "no /bin/busybox (busybox-static)";
  TempDir t;
  auto store = open_store(t);
  ASSERT_TRUE(store);
  auto start = std::chrono::steady_clock::now();
  auto img = store->make_base("pier/base");
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(img.ok()) << img.error().message;
  EXPECT_LT(took, std::chrono::seconds(3));  // ~0.1 s; generous for slow CI
  EXPECT_EQ(img->name, "pier/base:latest");
  EXPECT_EQ(img->architecture, host_architecture());
  EXPECT_EQ(img->os, "linux");
  ASSERT_EQ(img->layers.size(), 1u);
  EXPECT_EQ(json::serialize(img->config.at("Cmd")), R"(["sh"])");
  EXPECT_EQ(json::serialize(img->config.at("Env")),
            R"(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])");

  auto dirs = store->layer_dirs(*img);
  ASSERT_TRUE(dirs.ok()) << dirs.error().message;
  ASSERT_EQ(dirs->size(), 1u);
  const std::string root = (*dirs)[0];
  struct stat st {};
  ASSERT_EQ(lstat((root + "/bin/busybox").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  EXPECT_EQ(st.st_size, static_cast<off_t>(fs::file_size("/bin/busybox")));
  ASSERT_EQ(lstat((root + "/bin/sh").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(fs::read_symlink(root + "/bin/sh"), "/bin/busybox");
  EXPECT_TRUE(fs::is_symlink(root + "/bin/ls"));
  ASSERT_EQ(lstat((root + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  ASSERT_EQ(lstat(root.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  EXPECT_NE(slurp(root + "/etc/passwd").find("nobody:x:65534"), std::string::npos);
  EXPECT_NE(slurp(root + "/etc/group").find("root:x:0:"), std::string::npos);

  // Reproducible: the same busybox gives the same image.
  auto again = store->make_base("pier/base:other");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->digest, img->digest);
}

TEST(ImageMakeBase, MissingBusyboxIsAnError) {
  TempDir t;
  auto store = open_store(t);
  ASSERT_TRUE(store);
  auto img = store->make_base("base", t / "nope");
  ASSERT_FALSE(img.ok());
  EXPECT_EQ(img.error().kind, ErrorKind::kNotFound);
}

// ---------------------------------------------------------------- import of rootfs tarballs

std::vector<LayerEntry> sample_rootfs() {
  return {dir("bin/"), file("bin/hello", "#!/bin/sh\necho hello\n", 0755), dir("etc/"),
          file("etc/owned", "x", 0600, 1234), symlink_to("bin/alias", "hello"), dir("var/"), dir("var/empty/", 0700)};
}

TEST(ImageImport, RootfsTarballsPlainGzipZstd) {
  TempDir t;
  auto store = open_store(t);
  ASSERT_TRUE(store);
  std::string diff_id;
  for (auto [c, tag, type] : {std::tuple{Compression::kNone, "plain", "application/vnd.oci.image.layer.v1.tar"},
                              std::tuple{Compression::kGzip, "gzip", "application/vnd.oci.image.layer.v1.tar+gzip"},
                              std::tuple{Compression::kZstd, "zstd", "application/vnd.oci.image.layer.v1.tar+zstd"}}) {
    SCOPED_TRACE(tag);
    std::string tarball = t / (std::string("rootfs-") + tag);  // no extension: detected by content
    ASSERT_TRUE(write_layer(tarball, sample_rootfs(), c).ok());
    auto dc = detect_compression(tarball);
    ASSERT_TRUE(dc.ok());
    EXPECT_EQ(*dc, c);
    auto img = store->import(std::string("rootfs:") + tag, tarball);
    ASSERT_TRUE(img.ok()) << img.error().message;
    EXPECT_EQ(img->name, std::string("rootfs:") + tag);
    EXPECT_EQ(img->architecture, host_architecture());
    ASSERT_EQ(img->layers.size(), 1u);
    ASSERT_EQ(img->diff_ids.size(), 1u);
    EXPECT_EQ(img->size, static_cast<int64_t>(fs::file_size(tarball)));
    if (diff_id.empty()) diff_id = img->diff_ids[0];
    EXPECT_EQ(img->diff_ids[0], diff_id);  // same uncompressed tar each time
    if (c == Compression::kNone) {
      EXPECT_EQ(img->layers[0], diff_id);
    }
    auto manifest = json::parse(slurp(blob_file(t, img->digest))).as_object();
    EXPECT_EQ(manifest.at("layers").as_array()[0].as_object().at("mediaType").as_string(), type);
    EXPECT_EQ(manifest.at("mediaType").as_string(), "application/vnd.oci.image.manifest.v1+json");
    // The blobs are content-addressed.
    EXPECT_EQ(digest_of(slurp(blob_file(t, img->layers[0]))), img->layers[0]);
    EXPECT_EQ(digest_of(slurp(blob_file(t, img->config_digest))), img->config_digest);

    auto dirs = store->layer_dirs(*img);
    ASSERT_TRUE(dirs.ok()) << dirs.error().message;
    ASSERT_EQ(dirs->size(), 1u);
    EXPECT_EQ((*dirs)[0], t / ("store/layers/" + diff_id.substr(7)));
    const std::string root = (*dirs)[0];
    EXPECT_EQ(slurp(root + "/bin/hello"), "#!/bin/sh\necho hello\n");
    struct stat st {};
    ASSERT_EQ(lstat((root + "/bin/hello").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u);
    EXPECT_EQ(st.st_mtime, 1700000000);
    EXPECT_EQ(fs::read_symlink(root + "/bin/alias"), "hello");
    ASSERT_EQ(lstat((root + "/var/empty").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    EXPECT_EQ(st.st_mtime, 1700000000);
    if (geteuid() == 0) {
      ASSERT_EQ(lstat((root + "/etc/owned").c_str(), &st), 0);
      EXPECT_EQ(st.st_uid, 1234u);
      EXPECT_EQ(st.st_gid, 1234u);
    }
  }
  EXPECT_EQ(store->list().size(), 3u);
}

TEST(ImageImport, RejectsWhatIsNotAnImage) {
  TempDir t;
  auto store = open_store(t);
  ASSERT_TRUE(store);
  spit(t / "junk", std::string(5000, 'j'));
  EXPECT_FALSE(store->import("junk", t / "junk").ok());
  EXPECT_EQ(store->import("junk", t / "absent").error().kind, ErrorKind::kNotFound);
  ASSERT_TRUE(write_layer(t / "ok.tar", sample_rootfs()).ok());
  EXPECT_EQ(store->import("Bad Name", t / "ok.tar").error().kind, ErrorKind::kInvalid);
  EXPECT_EQ(store->import("x@sha256:" + kHex, t / "ok.tar").error().kind, ErrorKind::kInvalid);
  EXPECT_TRUE(store->list().empty());
  EXPECT_TRUE(fs::is_empty(t / "store/tmp"));
}

// ---------------------------------------------------------------- OCI layouts and whiteouts

TEST(LayerWhiteouts, TwoLayerOciLayoutBecomesOverlayForm) {
  TempDir t;
  auto store = open_store(t);
  ASSERT_TRUE(store);
  ASSERT_TRUE(write_layer(t / "l1", {dir("a/"), file("a/f1", "one"), file("a/f2", "two"), dir("b/"),
                                      file("b/old", "old")},
                          Compression::kGzip)
                  .ok());
  ASSERT_TRUE(write_layer(t / "l2", {dir("a/"), file("a/.wh.f1", ""), dir("b/"), file("b/.wh..wh..opq", ""),
                                      file("b/new", "new"), file("c/.wh.gone", "")})
                  .ok());
  auto i1 = inspect_layer(t / "l1");
  auto i2 = inspect_layer(t / "l2");
  ASSERT_TRUE(i1.ok() && i2.ok());
  EXPECT_EQ(i1->compression, Compression::kGzip);
  EXPECT_EQ(i2->diff_id, digest_of(slurp(t / "l2")));
  auto layout = write_layout(t / "layout", {t / "l1", t / "l2"}, {i1->diff_id, i2->diff_id}, "v1");

  auto img = store->import("app:v1", t / "layout");
  ASSERT_TRUE(img.ok()) << img.error().message;
  EXPECT_EQ(img->digest, layout.manifest_digest);  // an OCI manifest is kept byte for byte
  EXPECT_EQ(img->layers, layout.layer_digests);
  EXPECT_EQ(img->config.at("WorkingDir").as_string(), "/w");
  EXPECT_EQ(img->created_ms, 1714564800500);
  auto dirs = store->layer_dirs(*img);
  ASSERT_TRUE(dirs.ok()) << dirs.error().message;
  ASSERT_EQ(dirs->size(), 2u);
  const std::string lower = (*dirs)[0], upper = (*dirs)[1];
  EXPECT_EQ(slurp(lower + "/a/f1"), "one");
  struct stat st {};
  ASSERT_EQ(lstat((upper + "/a/f1").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_FALSE(fs::exists(upper + "/a/.wh.f1"));
  EXPECT_FALSE(fs::exists(upper + "/a/f2"));
  ASSERT_EQ(lstat((upper + "/c/gone").c_str(), &st), 0);  // parent made for the whiteout
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_FALSE(fs::exists(upper + "/b/.wh..wh..opq"));
  EXPECT_EQ(slurp(upper + "/b/new"), "new");
  if (geteuid() == 0) {
    char v[8] = {0};
    ssize_t n = lgetxattr((upper + "/b").c_str(), "trusted.overlay.opaque", v, sizeof v);
    ASSERT_EQ(n, 1) << strerror(errno);
    EXPECT_EQ(v[0], 'y');
    EXPECT_LT(lgetxattr((upper + "/a").c_str(), "trusted.overlay.opaque", v, sizeof v), 0);
  }

  // The same layout packed as a tar imports to the same image.
  std::vector<LayerEntry> packed{file("oci-layout", slurp(t / "layout/oci-layout")),
                                 file("index.json", slurp(t / "layout/index.json")), dir("blobs/"), dir("blobs/sha256/")};
  for (const auto& e : fs::directory_iterator(t / "layout/blobs/sha256"))
    packed.push_back(file("blobs/sha256/" + e.path().filename().string(), slurp(e.path().string())));
  ASSERT_TRUE(write_layer(t / "layout.tar", packed).ok());
  auto img2 = store->import("app:packed", t / "layout.tar");
  ASSERT_TRUE(img2.ok()) << img2.error().message;
  EXPECT_EQ(img2->digest, img->digest);
  EXPECT_EQ(img2->name, "app:packed");
  EXPECT_EQ(store->list().size(), 2u);
}

TEST(ImageImport, OciLayoutPicksByTagThenArchitecture) {
  TempDir t;
  auto store = open_store(t);
  ASSERT_TRUE(store);
  ASSERT_TRUE(write_layer(t / "l", {file("f", "1")}).ok());
  auto info = inspect_layer(t / "l");
  ASSERT_TRUE(info.ok());
  auto a = write_layout(t / "a", {t / "l"}, {info->diff_id}, "one", "s390x");
  auto b = write_layout(t / "b", {t / "l"}, {info->diff_id}, "two", host_architecture());
  // Merge b's blobs and descriptor into a's layout.
  for (const auto& e : fs::directory_iterator(t / "b/blobs/sha256"))
    fs::copy_file(e.path(), t / ("a/blobs/sha256/" + e.path().filename().string()), fs::copy_options::skip_existing);
  auto ia = json::parse(slurp(t / "a/index.json")).as_object();
  auto ib = json::parse(slurp(t / "b/index.json")).as_object();
  auto& ms = ia["manifests"].as_array();
  ms.push_back(ib["manifests"].as_array()[0]);
  ms[0].as_object()["platform"] = json::object{{"architecture", "s390x"}, {"os", "linux"}};
  ms[1].as_object()["platform"] = json::object{{"architecture", host_architecture()}, {"os", "linux"}};
  spit(t / "a/index.json", json::serialize(ia));

  auto by_tag = store->import("x:one", t / "a");
  ASSERT_TRUE(by_tag.ok()) << by_tag.error().message;
  EXPECT_EQ(by_tag->digest, a.manifest_digest);
  auto by_arch = store->import("x:latest", t / "a");
  ASSERT_TRUE(by_arch.ok()) << by_arch.error().message;
  EXPECT_EQ(by_arch->digest, b.manifest_digest);
}

TEST(ImageImport, OciLayoutWithCorruptBlobIsRefused) {
  TempDir t;
  auto store = open_store(t);
  ASSERT_TRUE(store);
  ASSERT_TRUE(write_layer(t / "l", {file("f", "content")}).ok());
  auto info = inspect_layer(t / "l");
  ASSERT_TRUE(info.ok());
  auto layout = write_layout(t / "layout", {t / "l"}, {info->diff_id}, "");
  std::string p = t / ("layout/blobs/sha256/" + layout.layer_digests[0].substr(7));
  std::string data = slurp(p);
  data[600] ^= 1;
  spit(p, data);
  auto img = store->import("bad", t / "layout");
  ASSERT_FALSE(img.ok());
  EXPECT_NE(img.error().message.find("digest"), std::string::npos) << img.error().message;
  EXPECT_TRUE(store->list().empty());
  EXPECT_EQ(std::distance(fs::directory_iterator(t / "store/blobs/sha256"), fs::directory_iterator()), 0);
}

TEST(ImageImport, DockerSchema2ManifestBecomesOci) {
  TempDir t;
  auto store = open_store(t);
  ASSERT_TRUE(store);
  ASSERT_TRUE(write_layer(t / "l", {file("f", "docker")}, Compression::kGzip).ok());
  auto info = inspect_layer(t / "l");
  ASSERT_TRUE(info.ok());
  auto layout = write_layout(t / "layout", {t / "l"}, {info->diff_id}, "latest");
  // Rewrite the manifest with Docker's media types.
  auto m = json::parse(slurp(t / ("layout/blobs/sha256/" + layout.manifest_digest.substr(7)))).as_object();
  m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json";
  m["config"].as_object()["mediaType"] = "application/vnd.docker.container.image.v1+json";
  m["layers"].as_array()[0].as_object()["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip";
  std::string text = json::serialize(m);
  std::string d = digest_of(text);
  spit(t / ("layout/blobs/sha256/" + d.substr(7)), text);
  spit(t / "layout/index.json",
       json::serialize(json::object{
           {"schemaVersion", 2},
           {"manifests", json::array{json::object{{"mediaType", "application/vnd.docker.distribution.manifest.v2+json"},
                                                  {"digest", d},
                                                  {"size", static_cast<int64_t>(text.size())}}}}}));
  auto img = store->import("docker-style", t / "layout");
  ASSERT_TRUE(img.ok()) << img.error().message;
  EXPECT_NE(img->digest, d);  // rewritten
  EXPECT_EQ(img->layers, layout.layer_digests);
  auto stored = json::parse(slurp(blob_file(t, img->digest))).as_object();
  EXPECT_EQ(stored.at("mediaType").as_string(), "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(stored.at("config").as_object().at("mediaType").as_string(), "application/vnd.oci.image.config.v1+json");
  EXPECT_EQ(stored.at("layers").as_array()[0].as_object().at("mediaType").as_string(),
            "application/vnd.oci.image.layer.v1.tar+gzip");
  auto dirs = store->layer_dirs(*img);
  ASSERT_TRUE(dirs.ok()) << dirs.error().message;
  EXPECT_EQ(slurp(dirs->at(0) + "/f"), "docker");
}

// ---------------------------------------------------------------- unpacking: links and escapes

TEST(LayerUnpack, HardLinksAndDevices) {
  TempDir t;
  std::vector<LayerEntry> entries{dir("d/"), file("d/a", "shared"), hardlink_to("d/b", "d/a"),
                                  hardlink_to("c", "./d/a")};
  if (geteuid() == 0) {
    LayerEntry null{T::kCharDevice, "null", 0666, 0, 0, 1700000000, {}, {}, {}, 1, 3};
    entries.push_back(null);
    entries.push_back({T::kFifo, "fifo", 0600, 0, 0, 1700000000, {}, {}, {}, 0, 0});
  }
  ASSERT_TRUE(write_layer(t / "l.tar", entries).ok());
  fs::create_directories(t / "out");
  auto info = unpack_layer(t / "l.tar", t / "out");
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->diff_id, digest_of(slurp(t / "l.tar")));
  struct stat a {}, b {}, c {};
  ASSERT_EQ(lstat((t / "out/d/a").c_str(), &a), 0);
  ASSERT_EQ(lstat((t / "out/d/b").c_str(), &b), 0);
  ASSERT_EQ(lstat((t / "out/c").c_str(), &c), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_ino, c.st_ino);
  EXPECT_EQ(a.st_nlink, 3u);
  EXPECT_EQ(slurp(t / "out/d/b"), "shared");
  if (geteuid() == 0) {
    struct stat n {};
    ASSERT_EQ(lstat((t / "out/null").c_str(), &n), 0);
    EXPECT_TRUE(S_ISCHR(n.st_mode));
    EXPECT_EQ(n.st_rdev, makedev(1, 3));
    ASSERT_EQ(lstat((t / "out/fifo").c_str(), &n), 0);
    EXPECT_TRUE(S_ISFIFO(n.st_mode));
  }
  // The process's working directory is untouched.
  EXPECT_NE(fs::current_path().string(), t / "out");
}

TEST(LayerUnpack, EscapesAreRefusedAndWriteNothingOutside) {
  TempDir t;
  fs::create_directories(t / "outside");
  struct Case {
    std::string name;
    std::vector<LayerEntry> entries;
  };
  std::vector<Case> cases = {
      {"dotdot", {file("../outside/pwned", "x")}},
      {"nested dotdot", {dir("a/"), file("a/../../outside/pwned", "x")}},
      {"absolute symlink parent", {symlink_to("link", t / "outside"), file("link/pwned", "x")}},
      {"relative symlink parent", {symlink_to("link", "../outside"), file("link/pwned", "x")}},
      {"whiteout through symlink", {symlink_to("link", t / "outside"), file("link/.wh.victim", "")}},
      {"opaque through symlink", {symlink_to("link", t / "outside"), file("link/.wh..wh..opq", "")}},
      {"hard link out", {hardlink_to("pwned", "../outside/victim")}},
      {"hard link through symlink", {symlink_to("link", t / "outside"), hardlink_to("pwned", "link/victim")}},
      {"absolute hard link", {hardlink_to("pwned", t / "outside/victim")}},
  };
  spit(t / "outside/victim", "victim");
  struct stat victim {};
  ASSERT_EQ(lstat((t / "outside/victim").c_str(), &victim), 0);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    std::string tar = t / ("evil" + std::to_string(i) + ".tar");
    ASSERT_TRUE(write_layer(tar, cases[i].entries).ok());
    std::string out = t / ("root" + std::to_string(i));
    fs::create_directories(out);
    auto r = unpack_layer(tar, out);
    EXPECT_FALSE(r.ok());
    if (!r.ok()) {
      EXPECT_EQ(r.error().kind, ErrorKind::kInvalid) << r.error().message;
    }
    EXPECT_FALSE(fs::exists(t / "outside/pwned"));
    EXPECT_TRUE(fs::is_regular_file(t / "outside/victim"));
    EXPECT_EQ(slurp(t / "outside/victim"), "victim");
    EXPECT_FALSE(fs::exists(t / "pwned"));
    for (const auto& e : fs::recursive_directory_iterator(out)) {
      struct stat st {};
      ASSERT_EQ(lstat(e.path().c_str(), &st), 0);
      EXPECT_NE(st.st_ino, victim.st_ino) << e.path() << " is linked to a file outside";
    }
  }
  if (geteuid() == 0) {
    char v[8];
    EXPECT_LT(lgetxattr((t / "outside").c_str(), "trusted.overlay.opaque", v, sizeof v), 0);
  }
  // Through the store: the import succeeds (the tarball is a valid tar) but unpacking fails cleanly.
  auto store = open_store(t);
  ASSERT_TRUE(store);
  auto img = store->import("evil", t / "evil0.tar");
  ASSERT_TRUE(img.ok()) << img.error().message;
  auto dirs = store->layer_dirs(*img);
  ASSERT_FALSE(dirs.ok());
  EXPECT_TRUE(fs::is_empty(t / "store/layers"));
  EXPECT_TRUE(fs::is_empty(t / "store/tmp"));
  EXPECT_FALSE(fs::exists(t / "outside/pwned"));
}

// ---------------------------------------------------------------- resolve, remove, tags

TEST(ImageResolve, ByTagDigestAndAliases) {
  TempDir t;
  auto store = open_store(t);
  ASSERT_TRUE(store);
  ASSERT_TRUE(write_layer(t / "r.tar", sample_rootfs()).ok());
  auto img = store->import("busybox", t / "r.tar");
  ASSERT_TRUE(img.ok()) << img.error().message;
  EXPECT_EQ(img->name, "busybox:latest");
  auto reg = store->import("registry:5000/team/app:v2", t / "r.tar");
  ASSERT_TRUE(reg.ok());

  for (const std::string& s : std::vector<std::string>{"busybox", "busybox:latest", "docker.io/library/busybox", "docker.io/library/busybox:latest",
                        "index.docker.io/library/busybox", "busybox@" + img->digest, img->digest,
                        img->digest.substr(7)}) {
    auto r = store->resolve(parse_ref(s));
    ASSERT_TRUE(r.ok()) << s << ": " << r.error().message;
    EXPECT_EQ(r->digest, img->digest) << s;
  }
  auto by_name = store->resolve(parse_ref("busybox"));
  EXPECT_EQ(by_name->name, "busybox:latest");
  auto r2 = store->resolve(parse_ref("registry:5000/team/app:v2"));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->name, "registry:5000/team/app:v2");
  auto by_config = store->resolve(parse_ref(img->config_digest));
  ASSERT_TRUE(by_config.ok());
  EXPECT_EQ(by_config->digest, img->digest);

  for (const std::string& s : std::vector<std::string>{"busybox:1.0", "nginx", "registry:5000/team/app", "other/busybox", "sha256:" + kHex}) {
    auto r = store->resolve(parse_ref(s));
    ASSERT_FALSE(r.ok()) << s;
    EXPECT_EQ(r.error().kind, ErrorKind::kNotFound) << s;
  }

  // A reopened store sees the same images.
  store.reset();
  auto again = open_store(t);
  ASSERT_TRUE(again);
  auto list = again->list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "busybox:latest");
  EXPECT_EQ(list[1].name, "registry:5000/team/app:v2");
  auto r3 = again->resolve(parse_ref("busybox"));
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->diff_ids, img->diff_ids);
  // index.json is an OCI index naming each tag.
  auto index = json::parse(slurp(t / "store/index.json")).as_object();
  EXPECT_EQ(index.at("manifests").as_array().size(), 2u);
  EXPECT_EQ(index.at("manifests").as_array()[0].as_object().at("annotations").as_object().at(
                "org.opencontainers.image.ref.name").as_string(),
            "busybox:latest");
  EXPECT_TRUE(fs::exists(t / "store/oci-layout"));
}

size_t blob_count(const TempDir& t) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(t / "store/blobs/sha256"), fs::directory_iterator()));
}

TEST(ImageRemove, DeletesUnreferencedBlobsAndLayers) {
  TempDir t;
  auto store = open_store(t);
  ASSERT_TRUE(store);
  ASSERT_TRUE(write_layer(t / "a.tar", {file("a", "a")}).ok());
  ASSERT_TRUE(write_layer(t / "b.tar", {file("b", "b")}, Compression::kGzip).ok());
  auto a = store->import("a", t / "a.tar");
  auto b = store->import("b", t / "b.tar");
  ASSERT_TRUE(a.ok() && b.ok());
  auto b2 = store->import("b:second", t / "b.tar");  // another tag (its own config: created differs)
  ASSERT_TRUE(b2.ok());
  ASSERT_TRUE(store->layer_dirs(*a).ok());
  ASSERT_TRUE(store->layer_dirs(*b).ok());
  size_t before = blob_count(t);

  ASSERT_TRUE(store->remove(parse_ref("a")).ok());
  EXPECT_FALSE(fs::exists(blob_file(t, a->digest)));
  EXPECT_FALSE(fs::exists(blob_file(t, a->config_digest)));
  EXPECT_FALSE(fs::exists(blob_file(t, a->layers[0])));
  EXPECT_FALSE(fs::exists(t / ("store/layers/" + a->diff_ids[0].substr(7))));
  EXPECT_TRUE(fs::exists(blob_file(t, b->layers[0])));
  EXPECT_TRUE(fs::exists(t / ("store/layers/" + b->diff_ids[0].substr(7))));
  EXPECT_EQ(blob_count(t), before - 3);
  EXPECT_EQ(store->resolve(parse_ref("a")).error().kind, ErrorKind::kNotFound);
  EXPECT_EQ(store->remove(parse_ref("a")).error().kind, ErrorKind::kNotFound);

  // b's layer is shared by two tags: removing one keeps it.
  ASSERT_TRUE(store->remove(parse_ref("b:latest")).ok());
  EXPECT_TRUE(fs::exists(blob_file(t, b->layers[0])));
  EXPECT_TRUE(store->resolve(parse_ref("b:second")).ok());
  // By digest: every tag of it goes (an OCI layout imports to the same digest each time).
  auto info = inspect_layer(t / "b.tar");
  ASSERT_TRUE(info.ok());
  auto layout = write_layout(t / "layout", {t / "b.tar"}, {info->diff_id}, "");
  auto c1 = store->import("c:one", t / "layout");
  auto c2 = store->import("c:two", t / "layout");
  ASSERT_TRUE(c1.ok() && c2.ok());
  EXPECT_EQ(c1->digest, c2->digest);
  ASSERT_TRUE(store->remove(parse_ref(layout.manifest_digest)).ok());
  EXPECT_FALSE(store->resolve(parse_ref("c:one")).ok());
  EXPECT_FALSE(store->resolve(parse_ref("c:two")).ok());
  EXPECT_TRUE(fs::exists(blob_file(t, b->layers[0])));  // b:second still uses it
  EXPECT_EQ(store->remove(parse_ref(layout.manifest_digest)).error().kind, ErrorKind::kNotFound);
  for (const auto& img : store->list()) ASSERT_TRUE(store->remove(parse_ref(img.name)).ok());
  EXPECT_TRUE(store->list().empty());
  EXPECT_EQ(blob_count(t), 0u);
  EXPECT_TRUE(fs::is_empty(t / "store/layers"));
}

TEST(ImageTag, ReimportMovesTheTag) {
  TempDir t;
  auto store = open_store(t);
  ASSERT_TRUE(store);
  ASSERT_TRUE(write_layer(t / "v1.tar", {file("version", "1")}).ok());
  ASSERT_TRUE(write_layer(t / "v2.tar", {file("version", "2")}).ok());
  auto v1 = store->import("app:prod", t / "v1.tar");
  ASSERT_TRUE(v1.ok());
  auto v2 = store->import("app:prod", t / "v2.tar");
  ASSERT_TRUE(v2.ok());
  ASSERT_NE(v1->digest, v2->digest);
  auto now = store->resolve(parse_ref("app:prod"));
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->digest, v2->digest);
  ASSERT_EQ(store->list().size(), 1u);
  // The old manifest is dangling: still there by digest (running containers use its layers).
  auto old = store->resolve(parse_ref(v1->digest));
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->name, "");
  EXPECT_TRUE(fs::exists(blob_file(t, v1->layers[0])));
  // And it survives a reopen.
  store.reset();
  store = open_store(t);
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->resolve(parse_ref(v1->digest)).ok());
  auto pruned = store->prune();
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(*pruned, 1);
  EXPECT_FALSE(store->resolve(parse_ref(v1->digest)).ok());
  EXPECT_FALSE(fs::exists(blob_file(t, v1->layers[0])));
  EXPECT_TRUE(fs::exists(blob_file(t, v2->layers[0])));
  EXPECT_EQ(store->resolve(parse_ref("app:prod"))->digest, v2->digest);
}

TEST(ImageLayers, ConcurrentUnpackOfTheSameLayer) {
  TempDir t;
  auto store = open_store(t);
  ASSERT_TRUE(store);
  std::vector<LayerEntry> entries{dir("d/")};
  for (int i = 0; i < 200; ++i) entries.push_back(file("d/f" + std::to_string(i), std::string(1000, 'x')));
  ASSERT_TRUE(write_layer(t / "l.tar", entries, Compression::kGzip).ok());
  auto img = store->import("many", t / "l.tar");
  ASSERT_TRUE(img.ok());
  std::vector<Result<std::vector<std::string>>> results(4, Error::internal("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) threads.emplace_back([&, i] { results[i] = store->layer_dirs(*img); });
  for (auto& th : threads) th.join();
  for (auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->at(0), results[0]->at(0));
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(results[0]->at(0) + "/d"), fs::directory_iterator()), 200);
  EXPECT_TRUE(fs::is_empty(t / "store/tmp"));
}

}  // namespace
}  // namespace pier::runtime

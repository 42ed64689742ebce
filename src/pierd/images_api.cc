#include "pierd/images_api.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "common/strings.h"
#include "common/ids.h"
#include "services/util.h"

namespace pier::pierd {

namespace json = boost::json;
namespace bhttp = boost::beast::http;
namespace fs = std::filesystem;

namespace {

http::Response ok(const http::Request& req, const json::object& body) {
  return http::make_response(req.version(), bhttp::status::ok, "application/json", json::serialize(body));
}

std::string query_param(std::string_view target, std::string_view key) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return "";
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view kv = rest.substr(0, amp);
    auto eq = kv.find('=');
    if (kv.substr(0, eq) == key && eq != std::string_view::npos) return str::uri_decode(kv.substr(eq + 1), true).value_or("");
    if (amp == std::string_view::npos) break;
    rest = rest.substr(amp + 1);
  }
  return "";
}

bool valid_upload_id(const std::string& id) {
  return id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

Error bad(std::string msg) { return Error::invalid("InvalidParameterException", std::move(msg)); }

}  // namespace

json::object image_view(const runtime::Image& i) {
  json::array layers;
  for (const auto& l : i.layers) layers.emplace_back(l);
  return json::object{{"name", i.name},         {"digest", i.digest},         {"architecture", i.architecture},
                      {"os", i.os},             {"size", i.size},             {"createdMs", i.created_ms},
                      {"layers", layers},       {"config", i.config}};
}

void add_image_routes(aws::Dispatcher& d, runtime::ImageStore& images, store::Store& store,
                      const std::string& upload_dir) {
  d.add_signed({"pier", "POST", "/_pier/images/upload", "pier:ImportImage",
                [upload_dir](aws::RequestContext&, http::Request& req) -> Result<http::Response> {
                  std::string id = query_param(req.target(), "id");
                  if (id.empty()) id = ids::hex_id(32);
                  if (!valid_upload_id(id)) return bad("invalid upload id");
                  std::error_code ec;
                  fs::create_directories(upload_dir, ec);
                  fs::path p = fs::path(upload_dir) / id;
                  uint64_t offset = std::strtoull(query_param(req.target(), "offset").c_str(), nullptr, 10);
                  uint64_t size = fs::exists(p) ? fs::file_size(p) : 0;
                  if (offset != size) return bad(fmt::format("upload {} has {} bytes, not {}", id, size, offset));
                  std::ofstream out(p, std::ios::binary | std::ios::app);
                  out.write(req.body().data(), static_cast<std::streamsize>(req.body().size()));
                  out.close();
                  if (!out) return Error::internal("cannot write the upload");
                  return ok(req, json::object{{"upload", id}, {"size", size + req.body().size()}});
                }});
  d.add_signed({"pier", "POST", "/_pier/images/import", "pier:ImportImage",
                [&images, upload_dir](aws::RequestContext&, http::Request& req) -> Result<http::Response> {
                  PIER_ASSIGN(auto in, svc::parse_object(req.body()));
                  std::string name = svc::get_string(in, "name"), id = svc::get_string(in, "upload");
                  if (!valid_upload_id(id)) return bad("invalid upload id");
                  PIER_TRY(runtime::ImageRef::parse(name));
                  fs::path p = fs::path(upload_dir) / id;
                  if (!fs::exists(p)) return bad("no such upload");
                  auto image = images.import(name, p.string());
                  std::error_code ec;
                  fs::remove(p, ec);
                  if (!image.ok()) return bad(image.error().message);
                  return ok(req, json::object{{"image", image_view(*image)}});
                }});
  d.add_signed({"pier", "POST", "/_pier/images/base", "pier:ImportImage",
                [&images](aws::RequestContext&, http::Request& req) -> Result<http::Response> {
                  PIER_ASSIGN(auto in, svc::parse_object(req.body()));
                  std::string name = svc::get_string(in, "name");
                  PIER_TRY(runtime::ImageRef::parse(name));
                  auto image = images.make_base(name);
                  if (!image.ok()) return bad(image.error().message);
                  return ok(req, json::object{{"image", image_view(*image)}});
                }});
  d.add_signed({"pier", "GET", "/_pier/images", "pier:ListImages",
                [&images](aws::RequestContext&, http::Request& req) -> Result<http::Response> {
                  json::array list;
                  for (const auto& i : images.list()) list.push_back(image_view(i));
                  return ok(req, json::object{{"images", list}});
                }});
  d.add_signed({"pier", "DELETE", "/_pier/images", "pier:DeleteImage",
                [&images, &store](aws::RequestContext&, http::Request& req) -> Result<http::Response> {
                  PIER_ASSIGN(auto ref, runtime::ImageRef::parse(query_param(req.target(), "name")));
                  if (auto image = images.resolve(ref); image.ok()) {
                    PIER_ASSIGN(bool used, store.read([&](store::Db& db) -> Result<bool> {
                      PIER_ASSIGN(auto* st, db.prepare("SELECT 1 FROM ecs_tasks WHERE last_status <> 'STOPPED' AND "
                                                       "instr(doc, ?) > 0 LIMIT 1"));
                      st->args(fmt::format("\"imageDigest\":\"{}\"", image->digest));
                      PIER_ASSIGN(bool row, st->step());
                      st->reset();
                      return row;
                    }));
                    if (used)
                      return Error::conflict("ImageInUseException",
                                             fmt::format("The image '{}' is used by a task that has not stopped.", ref.str()));
                  }
                  auto s = images.remove(ref);
                  if (!s.ok()) {
                    if (s.error().kind == ErrorKind::kNotFound)
                      return Error::not_found("ImageNotFoundException", fmt::format("The image '{}' does not exist.", ref.str()));
                    return s.error();
                  }
                  return ok(req, json::object{});
                }});
}

}  // namespace pier::pierd

// pierd's image API (pier's own, SigV4-signed with the signing name "pier",
// authorized as pier:<Action>), which `pier image …` calls:
//   POST   /_pier/images/upload?id=ID&offset=N   append a chunk of a tarball
//   POST   /_pier/images/import   {"name", "upload"}   → the image
//   POST   /_pier/images/base     {"name"}             → the image
//   GET    /_pier/images                               → {"images": […]}
//   DELETE /_pier/images?name=REF                      → {}
// A tarball comes in chunks (the HTTP body limit is 32 MiB) into
// HOME/uploads/ID, and is removed once imported.
#pragma once

#include <string>

#include "aws/dispatcher.h"
#include "runtime/images.h"
#include "store/store.h"

namespace pier::pierd {

// An image a task that is not STOPPED runs is not removed (its layers are
// the task's overlayfs lower dirs).
void add_image_routes(aws::Dispatcher& d, runtime::ImageStore& images, store::Store& store,
                      const std::string& upload_dir);

boost::json::object image_view(const runtime::Image& image);

}  // namespace pier::pierd

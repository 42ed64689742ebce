// Minimal XML for the XML protocols: a writer that escapes, and a parsed tree
// (parsing is Boost.PropertyTree's; this only reshapes its result).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace pier::aws::xml {

struct Node {
  std::string name;
  std::string text;
  std::vector<std::pair<std::string, std::string>> attributes;
  std::vector<Node> children;

  const Node* child(std::string_view n) const;
  std::vector<const Node*> children_named(std::string_view n) const;
};

// Parses a document; the result is its root element. Errors have code
// MalformedXML.
Result<Node> parse(std::string_view text);

class Writer {
 public:
  void open(std::string_view name, std::string_view xmlns = {});
  void close(std::string_view name);
  void element(std::string_view name, std::string_view text);
  void raw(std::string_view s) { out_ += s; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace pier::aws::xml

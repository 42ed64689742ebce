#include "aws/xml.h"

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>

#include <sstream>

#include "common/strings.h"

namespace pier::aws::xml {

namespace pt = boost::property_tree;

const Node* Node::child(std::string_view n) const {
  for (const auto& c : children)
    if (c.name == n) return &c;
  return nullptr;
}

std::vector<const Node*> Node::children_named(std::string_view n) const {
  std::vector<const Node*> out;
  for (const auto& c : children)
    if (c.name == n) out.push_back(&c);
  return out;
}

namespace {
Node convert(const std::string& name, const pt::ptree& t) {
  Node n;
  // Element names may carry a namespace prefix; the protocols match on the
  // local name.
  auto colon = name.find(':');
  n.name = colon == std::string::npos ? name : name.substr(colon + 1);
  n.text = t.data();
  for (const auto& [k, v] : t) {
    if (k == "<xmlattr>") {
      for (const auto& [ak, av] : v) n.attributes.emplace_back(ak, av.data());
    } else if (k == "<xmlcomment>") {
      continue;
    } else {
      n.children.push_back(convert(k, v));
    }
  }
  return n;
}
}  // namespace

Result<Node> parse(std::string_view text) {
  pt::ptree tree;
  try {
    std::istringstream in{std::string(text)};
    pt::read_xml(in, tree, pt::xml_parser::no_comments);
  } catch (const std::exception&) {
    return Error::invalid("MalformedXML",
                          "The XML you provided was not well-formed or did not validate against "
                          "our published schema");
  }
  for (const auto& [k, v] : tree) {
    if (k == "<xmlcomment>" || k == "<xmldecl>") continue;
    return convert(k, v);
  }
  return Error::invalid("MalformedXML", "The XML you provided was empty");
}

void Writer::open(std::string_view name, std::string_view xmlns) {
  out_ += '<';
  out_ += name;
  if (!xmlns.empty()) {
    out_ += " xmlns=\"";
    out_ += str::xml_escape(xmlns);
    out_ += '"';
  }
  out_ += '>';
}

void Writer::close(std::string_view name) {
  out_ += "</";
  out_ += name;
  out_ += '>';
}

void Writer::element(std::string_view name, std::string_view text) {
  open(name);
  out_ += str::xml_escape(text);
  close(name);
}

}  // namespace pier::aws::xml

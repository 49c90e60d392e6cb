#include "server/http/router.h"

namespace sibyl::server {

Router& Router::Add(const char* method, const std::string& pattern, HttpHandler handler, RouteOptions options) {
  routes_.push_back(Route{method, std::regex(pattern), std::move(handler), std::move(options)});
  return *this;
}

Router& Router::Get(const std::string& pattern, HttpHandler handler, RouteOptions options) {
  return Add("GET", pattern, std::move(handler), std::move(options));
}
Router& Router::Post(const std::string& pattern, HttpHandler handler, RouteOptions options) {
  return Add("POST", pattern, std::move(handler), std::move(options));
}
Router& Router::Put(const std::string& pattern, HttpHandler handler, RouteOptions options) {
  return Add("PUT", pattern, std::move(handler), std::move(options));
}
Router& Router::Delete(const std::string& pattern, HttpHandler handler, RouteOptions options) {
  return Add("DELETE", pattern, std::move(handler), std::move(options));
}
Router& Router::Options(const std::string& pattern, HttpHandler handler, RouteOptions options) {
  return Add("OPTIONS", pattern, std::move(handler), std::move(options));
}

const Router::Route* Router::Match(std::string_view method, const std::string& path, std::smatch& matches) const {
  const std::string_view wanted = method == "HEAD" ? std::string_view("GET") : method;
  for (const Route& route : routes_) {
    if (route.method != wanted) continue;
    if (std::regex_match(path, matches, route.pattern)) return &route;
  }
  matches = std::smatch();
  return nullptr;
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string DecodeUrl(std::string_view text, bool plus_as_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      const int hi = HexValue(text[i + 1]), lo = HexValue(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_as_space && c == '+' ? ' ' : c);
  }
  return out;
}

httplib::Params ParseQuery(std::string_view query) {
  httplib::Params params;
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view pair = query.substr(start, end - start);
    if (!pair.empty()) {
      const size_t eq = pair.find('=');
      std::string key = DecodeUrl(pair.substr(0, eq), true);
      std::string value = eq == std::string_view::npos ? "" : DecodeUrl(pair.substr(eq + 1), true);
      params.emplace(std::move(key), std::move(value));
    }
    start = end + 1;
  }
  return params;
}

}  // namespace sibyl::server

// The web pages' files (web/*.html, *.css, *.js, *.svg), embedded into the binary at build
// time by web/embed.cmake, which generates the definition of FindWebAsset. Internal to
// src/server.
#pragma once

#include <string_view>

namespace sibyl::server {

struct WebAsset {
  std::string_view name;          // the file name under web/, e.g. "app.js"
  std::string_view content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;
};

// The embedded file named `name`, or null.
const WebAsset* FindWebAsset(std::string_view name);

}  // namespace sibyl::server

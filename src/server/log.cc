#include "server/log.h"

#include "common/time.h"

namespace sibyl::server {

void JsonLog::Write(nlohmann::json line) {
  if (!enabled_) return;
  nlohmann::json out = {{"ts", FormatTime(SystemClock::Instance().NowMs())}};
  out.update(line);
  // One fwrite of the whole line: stdio locks the stream for the call.
  std::string text = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::fwrite(text.data(), 1, text.size(), out_);
}

void JsonLog::Flush() { std::fflush(out_); }

}  // namespace sibyl::server

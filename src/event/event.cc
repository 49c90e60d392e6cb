#include "event/event.h"

#include <fmt/format.h>

namespace sibyl {

std::string_view EventBatch::Intern(std::string_view s) {
  if (s.empty()) return {};
  // Small strings share arena blocks; big ones get their own.
  constexpr size_t kBlock = 1 << 16;
  if (s.size() > kBlock / 4) return Own(std::string(s));
  if (arena_ == nullptr || arena_->capacity() - arena_->size() < s.size()) {
    owned_.push_back(std::make_unique<std::string>());
    arena_ = owned_.back().get();
    arena_->reserve(kBlock);
  }
  size_t at = arena_->size();
  arena_->append(s);  // within capacity: no reallocation, earlier views stay valid
  return std::string_view(arena_->data() + at, s.size());
}

std::string_view EventBatch::Own(std::string buffer) {
  owned_.push_back(std::make_unique<std::string>(std::move(buffer)));
  return *owned_.back();
}

std::string_view EventBatch::Own(std::unique_ptr<char[]> buffer, size_t size) {
  owned_raw_.push_back(std::move(buffer));
  return std::string_view(owned_raw_.back().get(), size);
}

std::string EventBatch::Describe(const SourcePosition& p) const {
  std::string_view file = p.file < files.size() ? std::string_view(files[p.file]) : "";
  if (file.empty()) return fmt::format("batch index {}", p.index);
  if (p.line > 0) return fmt::format("{}:{}", file, p.line);
  return fmt::format("{}: index {}", file, p.index);
}

void EventBatch::Append(EventBatch&& other) {
  resolved = {};  // indices shift; the writer resolves again
  uint32_t file_base = static_cast<uint32_t>(files.size());
  uint32_t prop_base = static_cast<uint32_t>(properties.size());
  uint32_t update_base = static_cast<uint32_t>(user_updates.size());
  for (auto& f : other.files) files.push_back(std::move(f));
  properties.insert(properties.end(), other.properties.begin(), other.properties.end());
  user_updates.insert(user_updates.end(), other.user_updates.begin(), other.user_updates.end());
  events.reserve(events.size() + other.events.size());
  for (ParsedEvent e : other.events) {
    e.position.file += file_base;
    e.properties_begin += prop_base;
    e.properties_end += prop_base;
    e.user_updates_begin += update_base;
    e.user_updates_end += update_base;
    events.push_back(e);
  }
  // Take ownership of the memory the moved views point into.
  for (auto& s : other.owned_) owned_.push_back(std::move(s));
  for (auto& s : other.owned_raw_) owned_raw_.push_back(std::move(s));
  other.Clear();
}

void EventBatch::Clear() {
  events.clear();
  properties.clear();
  user_updates.clear();
  files.clear();
  owned_.clear();
  owned_raw_.clear();
  // Emptied, not freed: a parser reusing the batch keeps the vectors' memory.
  for (auto* ids : {&resolved.event_types, &resolved.property_keys, &resolved.property_values,
                    &resolved.update_keys, &resolved.update_values})
    ids->clear();
  resolved.insert_id_hashes.clear();
  resolved.store = 0;
  arena_ = nullptr;
}

}  // namespace sibyl

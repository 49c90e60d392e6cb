#include "query/store_names.h"

#include <algorithm>

namespace sibyl {
namespace {

std::vector<std::string> SortedDistinct(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

bool Contains(const std::vector<std::string>& sorted, std::string_view name) {
  return std::binary_search(sorted.begin(), sorted.end(), name, std::less<>());
}

}  // namespace

std::vector<std::string> AllNames(const DictionaryView& dict) {
  std::vector<std::string> names;
  names.reserve(dict.size());
  for (DictId i = 0; i < dict.size(); ++i) names.emplace_back(dict.name(i));
  return names;
}

std::vector<std::string> ReaderNames::EventTypes() const { return AllNames(reader_.event_types()); }
std::vector<std::string> ReaderNames::PropertyKeys() const { return AllNames(reader_.property_keys()); }

std::vector<std::string> ReaderNames::UserProperties() const {
  std::vector<bool> seen(reader_.property_keys().size(), false);
  for (const UserPropertyRecord& r : reader_.user_property_history())
    if (r.key < seen.size()) seen[r.key] = true;
  for (const auto& batch : reader_.number_columns())
    for (const NumberColumnBatch::Column& c : batch->columns)
      if (c.key < seen.size()) seen[c.key] = true;
  std::vector<std::string> names;
  for (DictId k = 0; k < seen.size(); ++k)
    if (seen[k]) names.emplace_back(reader_.property_keys().name(k));
  return names;
}

NameLists::NameLists(std::vector<std::string> event_types, std::vector<std::string> property_keys,
                     std::vector<std::string> user_properties)
    : event_types_(SortedDistinct(std::move(event_types))),
      property_keys_(SortedDistinct(std::move(property_keys))),
      user_properties_(SortedDistinct(std::move(user_properties))) {}

bool NameLists::HasEventType(std::string_view name) const { return Contains(event_types_, name); }
bool NameLists::HasPropertyKey(std::string_view name) const { return Contains(property_keys_, name); }

}  // namespace sibyl

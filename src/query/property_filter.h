// Property filters, as in a prediction's outcome (`"where": [...]`) and in cohorts:
// {"property": "plan", "op": "eq", "value": "pro"}. Several filters in one list all have
// to hold. See docs/FEATURES.md for the exact semantics of each operator.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "store/reader.h"

namespace sibyl {

enum class FilterOp { kEq, kNeq, kIn, kGt, kGte, kLt, kLte, kContains };

std::string_view FilterOpName(FilterOp op);  // "eq", "gte", ...

struct PropertyFilter {
  std::string property;
  FilterOp op = FilterOp::kEq;
  // A string, number or boolean; an array of them for kIn.
  nlohmann::json value;

  // "plan = \"pro\"", "price >= 10": for column names and messages.
  std::string Describe() const;
};

// Parses one filter object, or a compact text form "plan = pro", "price >= 10",
// "sibyl.purchase_7d.percentile >= 80", "name contains foo" (operators = != > >= < <=
// contains; a value that parses as a number is a number).
Result<PropertyFilter> ParsePropertyFilter(const nlohmann::json& j);
// Parses a list of filters (a JSON array, or a single filter).
Result<std::vector<PropertyFilter>> ParsePropertyFilters(const nlohmann::json& j);
nlohmann::json ToJson(const PropertyFilter& filter);

// A filter bound to one reader's dictionaries, so that matching a stored value is a
// couple of integer or double comparisons.
class CompiledFilter {
 public:
  // `key` is the dictionary id of filter.property (kNoDictId when the store never saw it:
  // then the property is absent everywhere).
  static CompiledFilter Compile(const PropertyFilter& filter, DictId key,
                                const EventReader& reader);

  DictId key() const { return key_; }
  // `value` is nullptr when the event or user does not have the property.
  bool Matches(const StoredValue* value) const;

 private:
  bool MatchesPresent(const StoredValue& value) const;

  DictId key_ = kNoDictId;
  FilterOp op_ = FilterOp::kEq;
  std::vector<DictId> strings_;  // eq/neq/in: ids of the wanted strings that exist
  std::vector<double> numbers_;  // eq/neq/in on numbers and booleans; the bound of gt..lte
  // contains: which string_values contain the needle (indexed by DictId); built once.
  std::vector<bool> contains_;
};

// Compiles a list of filters; all must match.
class CompiledFilters {
 public:
  static CompiledFilters Compile(const std::vector<PropertyFilter>& filters,
                                 const EventReader& reader);
  bool empty() const { return filters_.empty(); }
  const std::vector<CompiledFilter>& filters() const { return filters_; }
  // The distinct property keys the filters read (kNoDictId left out).
  std::vector<DictId> keys() const;

 private:
  std::vector<CompiledFilter> filters_;
};

// For one chunk: which rows pass all filters. `properties` holds the chunk's property
// columns; `column_of_key(key)` gives the index into it of a key, or -1.
// Returns a mask of chunk.size bytes (1 = passes).
void EvaluateFilters(const CompiledFilters& filters, const EventChunk& chunk,
                     const std::vector<int>& column_index_of_filter,
                     std::vector<uint8_t>& mask);

}  // namespace sibyl

#include "query/property_filter.h"

#include <algorithm>
#include <charconv>

namespace sibyl {
namespace {

struct OpName {
  FilterOp op;
  std::string_view name;
  std::string_view symbol;
};
constexpr OpName kOps[] = {
    {FilterOp::kEq, "eq", "="},        {FilterOp::kNeq, "neq", "!="},
    {FilterOp::kIn, "in", "in"},       {FilterOp::kGt, "gt", ">"},
    {FilterOp::kGte, "gte", ">="},     {FilterOp::kLt, "lt", "<"},
    {FilterOp::kLte, "lte", "<="},     {FilterOp::kContains, "contains", "contains"},
};

bool IsScalar(const nlohmann::json& v) { return v.is_string() || v.is_number() || v.is_boolean(); }

nlohmann::json ParseCompactValue(std::string_view text) {
  double number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec == std::errc() && end == text.data() + text.size() && !text.empty()) return number;
  if (text == "true") return true;
  if (text == "false") return false;
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"')
    return std::string(text.substr(1, text.size() - 2));
  return std::string(text);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

Result<PropertyFilter> ParseCompact(std::string_view text) {
  // Longest symbols first so that ">=" is not read as ">".
  static constexpr std::pair<std::string_view, FilterOp> kSymbols[] = {
      {" contains ", FilterOp::kContains}, {">=", FilterOp::kGte}, {"<=", FilterOp::kLte},
      {"!=", FilterOp::kNeq}, {">", FilterOp::kGt}, {"<", FilterOp::kLt}, {"=", FilterOp::kEq}};
  for (auto [symbol, op] : kSymbols) {
    size_t at = text.find(symbol);
    if (at == std::string_view::npos) continue;
    PropertyFilter f;
    f.property = std::string(Trim(text.substr(0, at)));
    f.op = op;
    f.value = ParseCompactValue(Trim(text.substr(at + symbol.size())));
    if (f.property.empty()) return InvalidArgument("filter \"{}\" names no property", text);
    return f;
  }
  return InvalidArgument("filter \"{}\" has no operator (=, !=, >, >=, <, <=, contains)", text);
}

}  // namespace

std::string_view FilterOpName(FilterOp op) {
  for (const OpName& o : kOps)
    if (o.op == op) return o.name;
  return "?";
}

std::string PropertyFilter::Describe() const {
  std::string_view symbol = "?";
  for (const OpName& o : kOps)
    if (o.op == op) symbol = o.symbol;
  return fmt::format("{} {} {}", property, symbol, value.dump());
}

Result<PropertyFilter> ParsePropertyFilter(const nlohmann::json& j) {
  if (j.is_string()) return ParseCompact(j.get<std::string>());
  if (!j.is_object()) return InvalidArgument("a filter must be an object or a string, got {}", j.dump());
  PropertyFilter f;
  auto property = j.find("property");
  if (property == j.end() || !property->is_string() || property->get<std::string>().empty())
    return InvalidArgument("filter {} needs \"property\" (a name)", j.dump());
  f.property = property->get<std::string>();
  std::string op = j.value("op", std::string("eq"));
  bool known = false;
  for (const OpName& o : kOps) {
    if (o.name == op || o.symbol == op) {
      f.op = o.op;
      known = true;
    }
  }
  if (!known)
    return InvalidArgument("filter on \"{}\": unknown op \"{}\" (eq, neq, in, gt, gte, lt, lte, contains)",
                           f.property, op);
  auto value = j.find("value");
  if (value == j.end()) value = j.find("values");
  if (value == j.end()) return InvalidArgument("filter on \"{}\" needs \"value\"", f.property);
  f.value = *value;
  if (f.op == FilterOp::kIn) {
    if (IsScalar(f.value)) f.value = nlohmann::json::array({f.value});
    if (!f.value.is_array() || f.value.empty() ||
        !std::all_of(f.value.begin(), f.value.end(), IsScalar))
      return InvalidArgument("filter on \"{}\": \"in\" needs a non-empty array of values", f.property);
  } else if (f.op == FilterOp::kGt || f.op == FilterOp::kGte || f.op == FilterOp::kLt ||
             f.op == FilterOp::kLte) {
    if (!f.value.is_number())
      return InvalidArgument("filter on \"{}\": \"{}\" needs a number, got {}", f.property, op,
                             f.value.dump());
  } else if (f.op == FilterOp::kContains) {
    if (!f.value.is_string())
      return InvalidArgument("filter on \"{}\": \"contains\" needs a string", f.property);
  } else if (!IsScalar(f.value)) {
    return InvalidArgument("filter on \"{}\": value must be a string, number or boolean", f.property);
  }
  return f;
}

Result<std::vector<PropertyFilter>> ParsePropertyFilters(const nlohmann::json& j) {
  std::vector<PropertyFilter> out;
  if (j.is_null()) return out;
  if (!j.is_array()) {
    ASSIGN_OR_RETURN(PropertyFilter f, ParsePropertyFilter(j));
    out.push_back(std::move(f));
    return out;
  }
  for (const nlohmann::json& item : j) {
    ASSIGN_OR_RETURN(PropertyFilter f, ParsePropertyFilter(item));
    out.push_back(std::move(f));
  }
  return out;
}

nlohmann::json ToJson(const PropertyFilter& filter) {
  return {{"property", filter.property}, {"op", FilterOpName(filter.op)}, {"value", filter.value}};
}

CompiledFilter CompiledFilter::Compile(const PropertyFilter& filter, DictId key,
                                       const EventReader& reader) {
  CompiledFilter c;
  c.key_ = key;
  c.op_ = filter.op;
  auto add = [&](const nlohmann::json& v) {
    if (v.is_string()) {
      if (auto id = reader.string_values().Find(v.get<std::string>())) c.strings_.push_back(*id);
    } else if (v.is_boolean()) {
      c.numbers_.push_back(v.get<bool>() ? 1 : 0);
    } else if (v.is_number()) {
      c.numbers_.push_back(v.get<double>());
    }
  };
  if (filter.value.is_array()) {
    for (const auto& v : filter.value) add(v);
  } else if (filter.op == FilterOp::kContains) {
    const DictionaryView& strings = reader.string_values();
    std::string needle = filter.value.get<std::string>();
    c.contains_.resize(strings.size());
    for (DictId id = 0; id < strings.size(); ++id)
      c.contains_[id] = strings.name(id).find(needle) != std::string_view::npos;
  } else {
    add(filter.value);
  }
  return c;
}

bool CompiledFilter::MatchesPresent(const StoredValue& v) const {
  bool is_number = v.kind == ValueKind::kNumber || v.kind == ValueKind::kBool;
  bool is_text = v.kind == ValueKind::kString || v.kind == ValueKind::kArray;
  auto equal = [&] {
    if (is_text) return std::find(strings_.begin(), strings_.end(), v.string) != strings_.end();
    if (is_number) return std::find(numbers_.begin(), numbers_.end(), v.number) != numbers_.end();
    return false;
  };
  switch (op_) {
    case FilterOp::kEq:
    case FilterOp::kIn: return equal();
    case FilterOp::kNeq: return !equal();
    case FilterOp::kGt: return v.kind == ValueKind::kNumber && v.number > numbers_[0];
    case FilterOp::kGte: return v.kind == ValueKind::kNumber && v.number >= numbers_[0];
    case FilterOp::kLt: return v.kind == ValueKind::kNumber && v.number < numbers_[0];
    case FilterOp::kLte: return v.kind == ValueKind::kNumber && v.number <= numbers_[0];
    case FilterOp::kContains: return is_text && v.string < contains_.size() && contains_[v.string];
  }
  return false;
}

bool CompiledFilter::Matches(const StoredValue* value) const {
  if (value == nullptr || value->kind == ValueKind::kNull) return op_ == FilterOp::kNeq;
  return MatchesPresent(*value);
}

CompiledFilters CompiledFilters::Compile(const std::vector<PropertyFilter>& filters,
                                         const EventReader& reader) {
  CompiledFilters out;
  for (const PropertyFilter& f : filters) {
    DictId key = reader.property_keys().Find(f.property).value_or(kNoDictId);
    out.filters_.push_back(CompiledFilter::Compile(f, key, reader));
  }
  return out;
}

std::vector<DictId> CompiledFilters::keys() const {
  std::vector<DictId> keys;
  for (const CompiledFilter& f : filters_)
    if (f.key() != kNoDictId && std::find(keys.begin(), keys.end(), f.key()) == keys.end())
      keys.push_back(f.key());
  return keys;
}

void EvaluateFilters(const CompiledFilters& filters, const EventChunk& chunk,
                     const std::vector<int>& column_index_of_filter, std::vector<uint8_t>& mask) {
  mask.assign(chunk.size, 1);
  std::vector<uint8_t> present;
  for (size_t f = 0; f < filters.filters().size(); ++f) {
    const CompiledFilter& filter = filters.filters()[f];
    int column = column_index_of_filter[f];
    bool absent_matches = filter.Matches(nullptr);
    if (column < 0 || column >= static_cast<int>(chunk.properties.size())) {
      if (!absent_matches) std::fill(mask.begin(), mask.end(), 0);
      continue;
    }
    const PropertyColumn& col = chunk.properties[column];
    // Rows without the property take the absent verdict; rows with it their own.
    present.assign(chunk.size, 0);
    for (size_t i = 0; i < col.rows.size(); ++i) {
      uint32_t row = col.rows[i] - chunk.first_row;  // property rows are segment-relative
      present[row] = 1;
      if (!filter.Matches(&col.values[i])) mask[row] = 0;
    }
    if (!absent_matches)
      for (size_t r = 0; r < chunk.size; ++r)
        if (!present[r]) mask[r] = 0;
  }
}

}  // namespace sibyl

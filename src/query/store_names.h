// The names a prediction or a cohort may use, as a store knows them: all that checking a
// definition's names needs ("unknown event type \"Purchse\"; did you mean ..."). An open
// store answers from its dictionaries; a ClickHouse cluster from a few DISTINCT queries
// (clickhouse/cluster_names.h), where a pull of every event would be the alternative.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/reader.h"

namespace sibyl {

class StoreNames {
 public:
  virtual ~StoreNames() = default;
  virtual bool HasEventType(std::string_view name) const = 0;
  // Property keys of events and of users (one name space, as the store's dictionary).
  virtual bool HasPropertyKey(std::string_view name) const = 0;
  // For suggestions; only asked for when a name is unknown.
  virtual std::vector<std::string> EventTypes() const = 0;
  virtual std::vector<std::string> PropertyKeys() const = 0;
  // The keys ever set on a user (property history and written-back scores).
  virtual std::vector<std::string> UserProperties() const = 0;
};

// The names of an open store, read from `reader` when asked (which must outlive it, or
// be given as a snapshot this keeps alive).
class ReaderNames final : public StoreNames {
 public:
  explicit ReaderNames(const EventReader& reader) : reader_(reader) {}
  explicit ReaderNames(std::shared_ptr<const EventReader> snapshot) : snapshot_(std::move(snapshot)), reader_(*snapshot_) {}
  bool HasEventType(std::string_view name) const override { return reader_.event_types().Find(name).has_value(); }
  bool HasPropertyKey(std::string_view name) const override { return reader_.property_keys().Find(name).has_value(); }
  std::vector<std::string> EventTypes() const override;
  std::vector<std::string> PropertyKeys() const override;
  std::vector<std::string> UserProperties() const override;

 private:
  std::shared_ptr<const EventReader> snapshot_;  // null when the caller keeps the reader
  const EventReader& reader_;
};

// Names given as lists (any order, repeats allowed).
class NameLists final : public StoreNames {
 public:
  NameLists(std::vector<std::string> event_types, std::vector<std::string> property_keys,
            std::vector<std::string> user_properties);
  bool HasEventType(std::string_view name) const override;
  bool HasPropertyKey(std::string_view name) const override;
  std::vector<std::string> EventTypes() const override { return event_types_; }
  std::vector<std::string> PropertyKeys() const override { return property_keys_; }
  std::vector<std::string> UserProperties() const override { return user_properties_; }

 private:
  std::vector<std::string> event_types_, property_keys_, user_properties_;  // sorted, distinct
};

// Every name of `dict`, in id order.
std::vector<std::string> AllNames(const DictionaryView& dict);

}  // namespace sibyl

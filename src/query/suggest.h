// "Did you mean": the closest known names to a misspelled one, for error messages about
// unknown events and properties in cohorts and predictions.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sibyl {

// Levenshtein distance, case-insensitive (users type "add to cart" for "Add to Cart").
size_t EditDistance(std::string_view a, std::string_view b);

// Up to `limit` candidates closest to `name`, nearest first (ties by name), keeping only
// those within a distance that still looks like a typo (a third of the longer name, at
// least 2).
std::vector<std::string> ClosestNames(std::string_view name,
                                      std::span<const std::string> candidates,
                                      size_t limit = 3);

// NotFound("unknown event type \"Purchse\"; did you mean \"Purchase\"?"). `what` names the
// kind of thing ("event type", "user property").
Status UnknownNameError(std::string_view what, std::string_view name,
                        std::span<const std::string> candidates);

}  // namespace sibyl

// The simulated product's vocabulary: event types, item categories, traffic sources,
// platforms and countries. Indices into these tables are what the simulator stores per
// event; names are only looked up when a line is written.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace sibyl::sim {

// Event types with a role in the model. Every other type is "background": drawn from a
// Zipf-like distribution over the rest of the catalogue (see BackgroundEventTypes()).
enum EventType : uint16_t {
  kAppOpen = 0,
  kSignUp,
  kCompleteOnboarding,
  kViewItem,
  kSearch,
  kAddToCart,
  kViewCart,
  kBeginCheckout,
  kAddPaymentInfo,
  kPurchase,
  kRemoveFromCart,
  kViewPricing,
  kContactSupport,
  kAppError,
  kUpgradePlan,
  kFirstBackgroundEvent,  // first index of the background (long-tail) catalogue
};

// Number of event types in the catalogue (about 100).
size_t EventTypeCount();
std::string_view EventTypeName(uint16_t type);
// Looks a type up by name (for the few background types the model uses); -1 if unknown.
int EventTypeByName(std::string_view name);
// Zipf weight of background type `type` (>= kFirstBackgroundEvent); the weights sum to 1.
std::span<const double> BackgroundCumulativeWeights();

enum Platform : uint8_t { kIos = 0, kAndroid = 1, kWeb = 2, kPlatformCount = 3 };
std::string_view PlatformName(uint8_t platform);    // "iOS"
std::string_view OsName(uint8_t platform);          // "ios"
std::string_view DeviceModel(uint8_t platform, uint32_t variant);
std::string_view OsVersion(uint8_t platform, uint32_t variant);

struct Country {
  std::string_view code;      // ISO 3166-1 alpha-2, as Amplitude sends it
  std::string_view language;  // "en"
  int utc_offset_hours;       // drives the local time of day of sessions
  double weight;              // share of users
};
std::span<const Country> Countries();

struct Category {
  std::string_view name;
  double conversion_multiplier;  // how much more likely a fan of it is to buy per session
  double median_price;           // prices are log-normal around this
  double weight;                 // share of users whose favourite it is
};
std::span<const Category> Categories();

std::span<const std::string_view> Sources();  // "search", "home_feed", ...
std::span<const std::string_view> SupportTopics();
std::span<const std::string_view> SearchTerms(uint8_t category);

}  // namespace sibyl::sim

#include "sim/catalogue.h"

#include <array>
#include <cmath>
#include <vector>

namespace sibyl::sim {
namespace {

// Order matters: the first entries are the EventType enumerators, the rest is the long
// tail in descending frequency rank.
constexpr std::string_view kEventNames[] = {
    "App Open", "Sign Up", "Complete Onboarding", "View Item", "Search", "Add to Cart",
    "View Cart", "Begin Checkout", "Add Payment Info", "Purchase", "Remove from Cart",
    "View Pricing", "Contact Support", "App Error", "Upgrade Plan",
    // Background catalogue, most to least frequent.
    "View Home", "Scroll Feed", "View Category", "View Recommendations", "Tap Banner",
    "View Reviews", "Add to Wishlist", "View Deals", "Filter Results", "View Notifications",
    "Sort Results", "Log Out", "Open Push Notification", "View Profile", "Zoom Image", "Share Item",
    "Play Video", "View Brand", "View Order History", "Track Order", "Disable Notifications", "View Size Guide",
    "Compare Items", "Apply Coupon", "View Saved Items", "Rate Item", "Follow Brand",
    "View Stories", "Swipe Story", "Log In", "Save Search", "Write Review", "View FAQ",
    "View Help Center", "View Loyalty Points", "Scan Barcode", "Use Voice Search",
    "Invite Friend", "Change Settings", "Edit Profile", "Update Address",
    "Add Payment Method", "Enable Notifications", "View Gift Cards", "View Blog Post",
    "Give Feedback", "View Returns Policy", "Start Return", "Redeem Points",
    "View AR Preview", "Subscribe Newsletter", "Take Survey", "Dismiss Survey",
    "View Onboarding Tip", "Skip Tutorial", "Complete Tutorial", "Start Chat", "End Chat",
    "Change Language", "Change Currency", "Reset Password",
    "Cancel Order", "View Invoice", "Download Invoice", "Report Problem", "Join Waitlist",
    "Redeem Gift Card", "Connect Social Account", "Link Device", "View Referral Code",
    "Copy Referral Link", "Delete Saved Item", "Clear Search History", "Change Password",
    "Enable Two Factor", "View Partner Offer", "Click Partner Offer",
    "Unsubscribe Newsletter", "View Terms", "View Privacy Policy", "Export Data",
    "View Sustainability Info", "Request Callback", "View Careers", "View Close Account",
};
constexpr size_t kEventCount = std::size(kEventNames);

// Zipf exponent of the long tail: rank r has weight 1 / r^s.
constexpr double kZipfExponent = 1.15;

std::vector<double> MakeBackgroundCumulative() {
  std::vector<double> cumulative;
  double total = 0;
  for (size_t i = kFirstBackgroundEvent; i < kEventCount; ++i) {
    total += 1.0 / std::pow(static_cast<double>(i - kFirstBackgroundEvent + 1), kZipfExponent);
    cumulative.push_back(total);
  }
  for (double& c : cumulative) c /= total;
  return cumulative;
}

constexpr Country kCountries[] = {
    {"US", "en", -5, 0.34}, {"GB", "en", 0, 0.09}, {"DE", "de", 1, 0.08},
    {"FR", "fr", 1, 0.06},  {"IN", "en", 5, 0.08}, {"BR", "pt", -3, 0.06},
    {"CA", "en", -5, 0.05}, {"JP", "ja", 9, 0.04}, {"AU", "en", 10, 0.03},
    {"ES", "es", 1, 0.04},  {"MX", "es", -6, 0.04}, {"NL", "nl", 1, 0.03},
    {"IT", "it", 1, 0.03},  {"SE", "sv", 1, 0.01}, {"KR", "ko", 9, 0.01},
    {"PL", "pl", 1, 0.01},
};

constexpr Category kCategories[] = {
    {"shoes", 1.0, 59, 0.10},   {"apparel", 1.1, 35, 0.14}, {"electronics", 0.55, 120, 0.12},
    {"home", 0.9, 45, 0.09},    {"beauty", 1.35, 22, 0.10}, {"sports", 0.95, 40, 0.07},
    {"books", 1.2, 14, 0.07},   {"toys", 1.1, 25, 0.06},    {"grocery", 1.7, 18, 0.09},
    {"jewelry", 0.5, 150, 0.04}, {"garden", 0.8, 30, 0.05}, {"pets", 1.45, 26, 0.07},
};

constexpr std::string_view kSources[] = {"search", "home_feed", "recommendation", "push",
                                         "email",  "category_page", "deal", "direct"};
constexpr std::string_view kSupportTopics[] = {"delivery", "refund", "payment", "account",
                                               "app_bug", "product_question"};
constexpr std::string_view kSearchTerms[][3] = {
    {"running shoes", "sneakers", "boots"},      {"t-shirt", "jeans", "jacket"},
    {"headphones", "usb-c charger", "laptop"},   {"lamp", "towels", "pillow"},
    {"moisturizer", "lipstick", "shampoo"},      {"yoga mat", "dumbbells", "tennis"},
    {"novel", "cookbook", "comics"},             {"lego", "puzzle", "doll"},
    {"coffee", "pasta", "olive oil"},            {"ring", "necklace", "watch"},
    {"seeds", "hose", "planter"},                {"dog food", "cat litter", "leash"},
};

constexpr std::string_view kIosModels[] = {"iPhone 13", "iPhone 14", "iPhone 15", "iPad Air"};
constexpr std::string_view kAndroidModels[] = {"Pixel 7", "Galaxy S23", "Galaxy A54", "Redmi Note 12"};
constexpr std::string_view kBrowsers[] = {"Chrome", "Safari", "Firefox", "Edge"};
constexpr std::string_view kIosVersions[] = {"16.6", "17.1", "17.2", "17.4"};
constexpr std::string_view kAndroidVersions[] = {"12", "13", "14", "14"};
constexpr std::string_view kWebVersions[] = {"120", "17", "121", "120"};

}  // namespace

size_t EventTypeCount() { return kEventCount; }
std::string_view EventTypeName(uint16_t type) { return type < kEventCount ? kEventNames[type] : "Unknown"; }

int EventTypeByName(std::string_view name) {
  for (size_t i = 0; i < kEventCount; ++i) {
    if (kEventNames[i] == name) return static_cast<int>(i);
  }
  return -1;
}

std::span<const double> BackgroundCumulativeWeights() {
  static const std::vector<double> cumulative = MakeBackgroundCumulative();
  return cumulative;
}

std::string_view PlatformName(uint8_t platform) {
  static constexpr std::string_view kNames[] = {"iOS", "Android", "Web"};
  return kNames[platform % kPlatformCount];
}
std::string_view OsName(uint8_t platform) {
  static constexpr std::string_view kNames[] = {"ios", "android", "web"};
  return kNames[platform % kPlatformCount];
}
std::string_view DeviceModel(uint8_t platform, uint32_t variant) {
  switch (platform) {
    case kIos: return kIosModels[variant % 4];
    case kAndroid: return kAndroidModels[variant % 4];
    default: return kBrowsers[variant % 4];
  }
}
std::string_view OsVersion(uint8_t platform, uint32_t variant) {
  switch (platform) {
    case kIos: return kIosVersions[variant % 4];
    case kAndroid: return kAndroidVersions[variant % 4];
    default: return kWebVersions[variant % 4];
  }
}

std::span<const Country> Countries() { return kCountries; }
std::span<const Category> Categories() { return kCategories; }
std::span<const std::string_view> Sources() { return kSources; }
std::span<const std::string_view> SupportTopics() { return kSupportTopics; }
std::span<const std::string_view> SearchTerms(uint8_t category) {
  return kSearchTerms[category % std::size(kSearchTerms)];
}

}  // namespace sibyl::sim

#include "sim/ndjson_writer.h"

#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "common/time.h"
#include "sim/catalogue.h"
#include "sim/rng.h"

namespace sibyl::sim {
namespace {

// The app ships a release every two weeks; each user updates some days late, so
// app_version is a user property that changes over time.
constexpr int64_t kFirstReleaseMs = 1672531200000;  // 2023-01-01
constexpr int64_t kReleaseEveryMs = 14 * kMsPerDay;

// Appends to a std::string whose capacity the caller keeps large, so appends rarely grow.
class Appender {
 public:
  explicit Appender(std::string& out) : out_(out) {}
  void Lit(std::string_view s) { out_.append(s.data(), s.size()); }
  void Char(char c) { out_.push_back(c); }
  void Int(int64_t v) {
    fmt::format_int f(v);
    out_.append(f.data(), f.size());
  }
  // A price in cents as a JSON number with two decimals: 1999 -> 19.99.
  void Cents(uint64_t cents) {
    Int(static_cast<int64_t>(cents / 100));
    char frac[3] = {'.', static_cast<char>('0' + (cents / 10) % 10), static_cast<char>('0' + cents % 10)};
    out_.append(frac, 3);
  }
  void Hex16(uint64_t v) {
    static constexpr char kDigits[] = "0123456789abcdef";
    char buf[16];
    for (int i = 15; i >= 0; --i) {
      buf[i] = kDigits[v & 15];
      v >>= 4;
    }
    out_.append(buf, 16);
  }
  // "key":"value"
  void Str(std::string_view key_with_quotes_and_colon, std::string_view value) {
    Lit(key_with_quotes_and_colon);
    Char('"');
    Lit(value);
    Char('"');
  }

 private:
  std::string& out_;
};

std::string_view PlanName(uint8_t plan) { return plan ? "pro" : "free"; }

void AppendItemProperties(Appender& a, const SimEvent& e) {
  a.Str("{\"category\":", Categories()[e.category].name);
  a.Lit(",\"price\":");
  a.Cents(e.price_cents);
  if (e.quantity > 0) {
    a.Lit(",\"quantity\":");
    a.Int(e.quantity);
  }
  a.Lit(",\"item_id\":\"i");
  a.Int(e.item);
  a.Char('"');
  a.Str(",\"source\":", Sources()[e.source]);
  a.Char('}');
}

void AppendEventProperties(Appender& a, const SimEvent& e) {
  switch (e.type) {
    case kViewItem:
    case kAddToCart:
    case kViewCart:
    case kBeginCheckout:
    case kAddPaymentInfo:
    case kRemoveFromCart:
    case kPurchase:
      AppendItemProperties(a, e);
      return;
    case kSearch: {
      uint8_t category = static_cast<uint8_t>(e.detail / 4);
      a.Str("{\"query\":", SearchTerms(category)[e.detail % 3]);
      a.Str(",\"category\":", Categories()[category].name);
      a.Char('}');
      return;
    }
    case kViewPricing:
      a.Str("{\"plan_shown\":", "pro");
      a.Str(",\"source\":", Sources()[e.source]);
      a.Char('}');
      return;
    case kContactSupport:
      a.Str("{\"topic\":", SupportTopics()[e.detail % SupportTopics().size()]);
      a.Str(",\"channel\":", e.detail % 2 ? "chat" : "email");
      a.Char('}');
      return;
    case kAppError:
      a.Lit("{\"error_code\":");
      a.Int(400 + e.detail * 17);
      a.Char('}');
      return;
    case kSignUp: {
      static constexpr std::string_view kMethods[] = {"email", "google", "apple"};
      a.Str("{\"method\":", kMethods[e.detail % 3]);
      a.Char('}');
      return;
    }
    case kUpgradePlan:
      a.Lit("{\"from\":\"free\",\"to\":\"pro\"}");
      return;
    default:
      a.Str("{\"source\":", Sources()[e.source]);
      a.Char('}');
      return;
  }
}

}  // namespace

UserLineContext MakeLineContext(const UserModel& user) {
  UserLineContext c;
  c.user = &user;
  auto id = fmt::format_to_n(c.user_id, sizeof(c.user_id) - 1, "u{:08}", user.index);
  c.user_id_len = static_cast<uint32_t>(id.size);
  auto dev = fmt::format_to_n(c.device_id, sizeof(c.device_id) - 1, "d-{:016x}", user.device_hash);
  c.device_id_len = static_cast<uint32_t>(dev.size);
  return c;
}

void AppendEventLine(const UserLineContext& context, const SimEvent& e, std::string& out) {
  const UserModel& user = *context.user;
  Appender a(out);
  const bool anonymous = (e.flags & kAnonymousEvent) != 0;
  if (anonymous) {
    a.Lit("{\"device_id\":\"");
  } else {
    a.Lit("{\"user_id\":\"");
    a.Lit({context.user_id, context.user_id_len});
    a.Lit("\",\"device_id\":\"");
  }
  a.Lit({context.device_id, context.device_id_len});
  a.Char('"');
  if (e.flags & kIdentifyLine) {
    a.Lit(",\"event_type\":\"$identify\",\"time\":");
    a.Int(e.time_ms);
    a.Lit(",\"insert_id\":\"");
    a.Hex16(SplitMix64(user.device_hash ^ (0x9e37ULL + e.seq)));
    a.Str("\",\"user_properties\":{\"$set\":{\"plan\":", PlanName(e.plan));
    a.Lit("}}}\n");
    return;
  }
  a.Str(",\"event_type\":", EventTypeName(e.type));
  a.Lit(",\"time\":");
  a.Int(e.time_ms);
  a.Lit(",\"insert_id\":\"");
  a.Hex16(SplitMix64(user.device_hash ^ (0x9e37ULL + e.seq)));
  a.Lit("\",\"session_id\":");
  a.Int(e.session_id);
  a.Str(",\"platform\":", PlatformName(user.platform));
  a.Str(",\"os_name\":", OsName(user.platform));
  a.Str(",\"os_version\":", OsVersion(user.platform, user.device_variant));
  a.Str(",\"device_model\":", DeviceModel(user.platform, user.device_variant));
  const Country& country = Countries()[user.country];
  a.Str(",\"country\":", country.code);
  int64_t release = (e.time_ms - user.app_update_lag_days * kMsPerDay - kFirstReleaseMs) / kReleaseEveryMs;
  a.Lit(",\"app_version\":\"5.");
  a.Int(release);
  a.Lit(user.device_variant & 1 ? ".1\"" : ".0\"");
  if (e.type == kPurchase) {
    a.Lit(",\"price\":");
    a.Cents(e.price_cents);
    a.Lit(",\"quantity\":");
    a.Int(e.quantity);
    a.Lit(",\"revenue\":");
    a.Cents(static_cast<uint64_t>(e.price_cents) * e.quantity);
    a.Lit(",\"productId\":\"i");
    a.Int(e.item);
    a.Char('"');
  }
  a.Lit(",\"event_properties\":");
  AppendEventProperties(a, e);
  if (!anonymous) a.Str(",\"user_properties\":{\"plan\":", PlanName(e.plan));
  a.Lit(anonymous ? "}\n" : "}}\n");
}

}  // namespace sibyl::sim

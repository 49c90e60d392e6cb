#include "clickhouse/event_rows.h"

namespace sibyl::clickhouse {
namespace {

// A Value as (kind, number, string).
void SplitValue(const Value& v, uint8_t* kind, double* number, std::string_view* text) {
  *kind = static_cast<uint8_t>(v.kind);
  *number = v.kind == ValueKind::kBool ? (v.boolean ? 1.0 : 0.0) : v.number;
  *text = (v.kind == ValueKind::kString || v.kind == ValueKind::kArray) ? v.text : std::string_view();
}

Value JoinValue(uint8_t kind, double number, std::string_view text) {
  switch (static_cast<ValueKind>(kind)) {
    case ValueKind::kBool: return Value::Bool(number != 0);
    case ValueKind::kNumber: return Value::Number(number);
    case ValueKind::kString: return Value::String(text);
    case ValueKind::kArray: return Value::Array(text);
    default: return Value::Null();
  }
}

template <typename T, typename Get>
void WriteArray(RowBinaryWriter& out, std::span<const T> items, Get get) {
  out.VarUInt(items.size());
  for (const T& item : items) get(item);
}

}  // namespace

std::string_view EventRowColumns() {
  return "batch, row, owner, owner_hash, user_id, device_id, event_type, time, session_id, insert_id, is_identify, "
         "prop_keys, prop_kinds, prop_nums, prop_strs, upd_ops, upd_keys, upd_kinds, upd_nums, upd_strs";
}

std::string_view SentinelRowSelect() {
  return "SELECT toUInt64(18446744073709551615) AS batch, toUInt32(0) AS row, '' AS owner, toUInt64(0) AS owner_hash, "
         "'' AS user_id, '' AS device_id, '' AS event_type, toInt64(0) AS time, toInt64(-1) AS session_id, "
         "'' AS insert_id, toUInt8(0) AS is_identify, emptyArrayString() AS prop_keys, emptyArrayUInt8() AS prop_kinds, "
         "emptyArrayFloat64() AS prop_nums, emptyArrayString() AS prop_strs, emptyArrayUInt8() AS upd_ops, "
         "emptyArrayString() AS upd_keys, emptyArrayUInt8() AS upd_kinds, emptyArrayFloat64() AS upd_nums, "
         "emptyArrayString() AS upd_strs";
}

std::string OwnerOf(const ParsedEvent& e) {
  return e.user_id.empty() ? "d:" + std::string(e.device_id) : "u:" + std::string(e.user_id);
}

void EncodeEventRow(const EventBatch& batch, const ParsedEvent& e, uint64_t batch_id, uint32_t row,
                    std::string_view owner, uint64_t owner_hash, int64_t time_ms, RowBinaryWriter& out) {
  out.UInt64(batch_id);
  out.UInt32(row);
  out.String(owner);
  out.UInt64(owner_hash);
  out.String(e.user_id);
  out.String(e.device_id);
  out.String(e.event_type);
  out.Int64(time_ms);
  out.Int64(e.session_id);
  out.String(e.insert_id);
  out.UInt8(e.is_identify ? 1 : 0);
  const std::span<const Property> props = batch.PropertiesOf(e);
  uint8_t kind;
  double number;
  std::string_view text;
  WriteArray(out, props, [&](const Property& p) { out.String(p.key); });
  WriteArray(out, props, [&](const Property& p) { SplitValue(p.value, &kind, &number, &text); out.UInt8(kind); });
  WriteArray(out, props, [&](const Property& p) { SplitValue(p.value, &kind, &number, &text); out.Float64(number); });
  WriteArray(out, props, [&](const Property& p) { SplitValue(p.value, &kind, &number, &text); out.String(text); });
  const std::span<const UserPropertyUpdate> updates = batch.UserUpdatesOf(e);
  WriteArray(out, updates, [&](const UserPropertyUpdate& u) { out.UInt8(static_cast<uint8_t>(u.op)); });
  WriteArray(out, updates, [&](const UserPropertyUpdate& u) { out.String(u.key); });
  WriteArray(out, updates, [&](const UserPropertyUpdate& u) { SplitValue(u.value, &kind, &number, &text); out.UInt8(kind); });
  WriteArray(out, updates, [&](const UserPropertyUpdate& u) { SplitValue(u.value, &kind, &number, &text); out.Float64(number); });
  WriteArray(out, updates, [&](const UserPropertyUpdate& u) { SplitValue(u.value, &kind, &number, &text); out.String(text); });
}

bool DecodeEventRow(RowBinaryReader& in, RowKey* key, EventBatch* batch) {
  std::string_view owner, user_id, device_id, event_type, insert_id;
  uint64_t owner_hash = 0;
  int64_t time = 0, session = -1;
  uint8_t identify = 0;
  if (!in.UInt64(&key->batch) || !in.UInt32(&key->row) || !in.String(&owner) || !in.UInt64(&owner_hash) ||
      !in.String(&user_id) || !in.String(&device_id) || !in.String(&event_type) || !in.Int64(&time) ||
      !in.Int64(&session) || !in.String(&insert_id) || !in.UInt8(&identify))
    return false;
  // Parallel arrays: (keys, kinds, numbers, strings) for properties; (ops, keys, kinds,
  // numbers, strings) for updates. Their lengths must agree; a row that says otherwise is
  // not one sibyl wrote, and reads as incomplete (the caller reports it).
  auto read_group = [&in](bool with_ops, std::vector<uint8_t>& ops, std::vector<std::string_view>& keys,
                          std::vector<uint8_t>& kinds, std::vector<double>& nums,
                          std::vector<std::string_view>& strs) {
    uint64_t n = 0;
    if (with_ops) {
      if (!in.VarUInt(&n) || n > (1u << 24)) return false;
      ops.resize(n);
      for (auto& v : ops)
        if (!in.UInt8(&v)) return false;
    }
    uint64_t m = 0;
    if (!in.VarUInt(&m) || (with_ops && m != n) || m > (1u << 24)) return false;
    keys.resize(m);
    for (auto& v : keys)
      if (!in.String(&v)) return false;
    if (!in.VarUInt(&n) || n != m) return false;
    kinds.resize(n);
    for (auto& v : kinds)
      if (!in.UInt8(&v)) return false;
    if (!in.VarUInt(&n) || n != m) return false;
    nums.resize(n);
    for (auto& v : nums)
      if (!in.Float64(&v)) return false;
    if (!in.VarUInt(&n) || n != m) return false;
    strs.resize(n);
    for (auto& v : strs)
      if (!in.String(&v)) return false;
    return true;
  };
  thread_local std::vector<uint8_t> p_ops, p_kinds, u_ops, u_kinds;
  thread_local std::vector<std::string_view> p_keys, p_strs, u_keys, u_strs;
  thread_local std::vector<double> p_nums, u_nums;
  if (!read_group(false, p_ops, p_keys, p_kinds, p_nums, p_strs)) return false;
  if (!read_group(true, u_ops, u_keys, u_kinds, u_nums, u_strs)) return false;
  if (batch == nullptr) return true;

  ParsedEvent e;
  e.user_id = batch->Intern(user_id);
  e.device_id = batch->Intern(device_id);
  e.event_type = batch->Intern(event_type);
  e.insert_id = batch->Intern(insert_id);
  e.time_ms = time;
  e.has_time = true;
  e.session_id = session;
  e.is_identify = identify != 0;
  e.properties_begin = static_cast<uint32_t>(batch->properties.size());
  for (size_t i = 0; i < p_keys.size(); ++i)
    batch->properties.push_back({batch->Intern(p_keys[i]), JoinValue(p_kinds[i], p_nums[i], p_strs[i].empty() ? std::string_view() : batch->Intern(p_strs[i]))});
  e.properties_end = static_cast<uint32_t>(batch->properties.size());
  e.user_updates_begin = static_cast<uint32_t>(batch->user_updates.size());
  for (size_t i = 0; i < u_keys.size(); ++i)
    batch->user_updates.push_back({static_cast<UserPropertyOp>(u_ops[i]), batch->Intern(u_keys[i]),
                                   JoinValue(u_kinds[i], u_nums[i], u_strs[i].empty() ? std::string_view() : batch->Intern(u_strs[i]))});
  e.user_updates_end = static_cast<uint32_t>(batch->user_updates.size());
  e.position.index = static_cast<uint32_t>(batch->events.size());
  batch->events.push_back(e);
  return true;
}

}  // namespace sibyl::clickhouse

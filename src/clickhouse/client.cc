#include "clickhouse/client.h"

#include <httplib.h>

#include <mutex>

namespace sibyl::clickhouse {

struct Client::Impl {
  std::string host;
  int port = 0;
  // One connection per request: a Client is shared by threads (a pull per shard runs
  // beside inserts) and httplib's client is not safe to share.
  std::unique_ptr<httplib::Client> Open() const {
    auto c = std::make_unique<httplib::Client>(host, port);
    c->set_connection_timeout(5);
    // Long pulls and merges answer only at the end (wait_end_of_query).
    c->set_read_timeout(3600);
    c->set_write_timeout(600);
    return c;
  }
};

namespace {

// TabSeparated escaping for external table values.
void AppendTsv(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\\': out += "\\\\"; break;
      case '\0': out += "\\0"; break;
      default: out.push_back(c);
    }
  }
  out.push_back('\n');
}

std::string FirstLine(std::string_view body) {
  std::string_view line = body.substr(0, body.find('\n'));
  if (line.size() > 400) line = line.substr(0, 400);
  return std::string(line);
}

}  // namespace

std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

Result<std::unique_ptr<Client>> Client::Connect(std::string_view endpoint, int max_threads,
                                                std::vector<std::pair<std::string, std::string>> settings) {
  std::string_view rest = endpoint;
  if (rest.starts_with("http://")) rest.remove_prefix(7);
  else if (rest.find("://") != std::string_view::npos)
    return InvalidArgument("ClickHouse endpoint \"{}\": only http:// is supported", endpoint);
  while (rest.ends_with('/')) rest.remove_suffix(1);
  const size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return InvalidArgument("ClickHouse endpoint \"{}\": expected http://HOST:PORT", endpoint);
  int port = 0;
  for (char c : rest.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return InvalidArgument("ClickHouse endpoint \"{}\": bad port", endpoint);
    port = port * 10 + (c - '0');
  }
  if (port <= 0 || port > 65535) return InvalidArgument("ClickHouse endpoint \"{}\": bad port", endpoint);
  std::unique_ptr<Client> client(new Client());
  client->impl_ = std::make_unique<Impl>();
  client->impl_->host = std::string(rest.substr(0, colon));
  client->impl_->port = port;
  client->endpoint_ = "http://" + std::string(rest);
  client->max_threads_ = std::max(1, max_threads);
  client->settings_ = std::move(settings);
  return client;
}

Client::~Client() = default;

Status Client::Execute(std::string_view sql) const {
  return Stream(sql, {}, [](std::string_view) { return true; });
}

Result<std::string> Client::Query(std::string_view sql, const std::vector<ExternalTable>& tables) const {
  std::string out;
  RETURN_IF_ERROR(Stream(sql, tables, [&out](std::string_view bytes) {
    out.append(bytes);
    return true;
  }));
  return out;
}

Status Client::Stream(std::string_view sql, const std::vector<ExternalTable>& tables,
                      const std::function<bool(std::string_view)>& receive, bool buffered) const {
  // Sorting a slice's rows (ORDER BY batch, row) spills to disk past 1 GB instead of
  // failing on the memory limit.
  httplib::Params params{{"wait_end_of_query", buffered ? "1" : "0"},
                         {"max_threads", std::to_string(max_threads_)},
                         {"max_bytes_before_external_sort", "1000000000"},
                         {"max_bytes_before_external_group_by", "1000000000"}};
  for (const auto& [key, value] : settings_) params.emplace(key, value);
  httplib::Request req;
  req.method = "POST";
  std::string body;
  if (tables.empty()) {
    req.body = std::string(sql);
    req.set_header("Content-Type", "text/plain");
  } else {
    // External tables travel as multipart/form-data parts; the query goes in the URL.
    params.emplace("query", std::string(sql));
    const std::string boundary = "sibyl-external-data-4b1d9e";
    for (const ExternalTable& t : tables) {
      params.emplace(t.name + "_structure", t.column + " " + t.type);
      params.emplace(t.name + "_format", "TabSeparated");
      body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + t.name + "\"; filename=\"" +
              t.name + "\"\r\nContent-Type: text/plain\r\n\r\n";
      for (const std::string& v : t.values) AppendTsv(body, v);
      body += "\r\n";
    }
    body += "--" + boundary + "--\r\n";
    req.body = std::move(body);
    req.set_header("Content-Type", "multipart/form-data; boundary=" + boundary);
  }
  req.path = httplib::append_query_params("/", params);
  int status = 0;
  std::string error_body;
  bool stopped = false;
  req.response_handler = [&status](const httplib::Response& r) {
    status = r.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (status != 200) {
      if (error_body.size() < 4096) error_body.append(data, n);
      return true;
    }
    if (!receive(std::string_view(data, n))) {
      stopped = true;
      return false;
    }
    return true;
  };
  auto connection = impl_->Open();
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  const bool sent = connection->send(req, res, error);
  if (stopped) return Status::Ok();
  if (!sent || error != httplib::Error::Success)
    return Status(StatusCode::kIoError,
                  fmt::format("ClickHouse at {} did not answer: {}", endpoint_, httplib::to_string(error)));
  if (status != 200)
    return Status(StatusCode::kInternal,
                  fmt::format("ClickHouse at {} refused a query (HTTP {}): {}", endpoint_, status,
                              FirstLine(error_body.empty() ? res.body : error_body)));
  return Status::Ok();
}

Status Client::InsertRowBinary(std::string_view table, std::string_view rows) const {
  httplib::Params params{{"query", fmt::format("INSERT INTO {} FORMAT RowBinary", table)},
                         {"max_threads", std::to_string(max_threads_)}};
  auto connection = impl_->Open();
  auto res = connection->Post(httplib::append_query_params("/", params), rows.data(), rows.size(),
                              "application/octet-stream");
  if (!res)
    return Status(StatusCode::kIoError,
                  fmt::format("ClickHouse at {} did not answer an insert into {}: {}", endpoint_, table,
                              httplib::to_string(res.error())));
  if (res->status != 200)
    return Status(StatusCode::kInternal, fmt::format("ClickHouse at {} refused an insert into {} (HTTP {}): {}",
                                                     endpoint_, table, res->status, FirstLine(res->body)));
  return Status::Ok();
}

}  // namespace sibyl::clickhouse

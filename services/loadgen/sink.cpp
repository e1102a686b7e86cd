#include "services/loadgen/sink.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "common/config/auth.h"

namespace drainmet::loadgen {
namespace {

using nlohmann::json;

constexpr std::size_t kListLimit = 100;

bool Close(double got, double want, double relative) {
  return std::fabs(got - want) <= relative * std::max(1.0, std::fabs(want));
}

void Push(json& list, json entry) {
  if (list.size() < kListLimit) list.push_back(std::move(entry));
}

std::int64_t UnixNanosNow() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The quick look of Enqueue: blanks aside, '{' first and '}' last.
bool LooksLikeObject(std::string_view body) {
  constexpr std::string_view kBlanks = " \t\r\n";
  const std::size_t first = body.find_first_not_of(kBlanks);
  const std::size_t last = body.find_last_not_of(kBlanks);
  return first != std::string_view::npos && last > first && body[first] == '{' && body[last] == '}';
}

}  // namespace

void GaugeLedger::CountArrival(std::string_view user, std::size_t bytes, std::int64_t unix_nanos) const {
  ++requests_;
  bytes_ += bytes;
  if (first_unix_nanos_ == 0) first_unix_nanos_ = unix_nanos;
  last_unix_nanos_ = unix_nanos;
  auto it = users_.find(user);
  if (it == users_.end()) it = users_.emplace(std::string(user), 0).first;
  ++it->second;
}

bool GaugeLedger::Add(std::string_view user, std::string_view body) {
  std::lock_guard<std::mutex> ledger_lock(ledger_mu_);
  AccountPending();
  {
    std::lock_guard<std::mutex> lock(arrival_mu_);
    CountArrival(user, body.size(), UnixNanosNow());
  }
  return Account(user, body);
}

bool GaugeLedger::Enqueue(std::string_view user, std::string_view body) {
  const std::int64_t now = UnixNanosNow();
  const bool valid = LooksLikeObject(body);
  bool over = false;
  {
    std::lock_guard<std::mutex> lock(arrival_mu_);
    CountArrival(user, body.size(), now);
    if (!valid) {
      ++refused_at_arrival_;
      return false;
    }
    pending_.push_back(Pending{std::string(user), std::string(body)});
    pending_bytes_ += body.size();
    over = pending_bytes_ > max_pending_bytes_;
  }
  if (over) Flush();
  return true;
}

void GaugeLedger::Flush() const {
  std::lock_guard<std::mutex> lock(ledger_mu_);
  AccountPending();
}

GaugeLedger::Arrivals GaugeLedger::Received() const {
  std::lock_guard<std::mutex> lock(arrival_mu_);
  return Arrivals{.requests = requests_,
                  .bytes = bytes_,
                  .pending_requests = pending_.size(),
                  .pending_bytes = pending_bytes_,
                  .first_unix_nanos = first_unix_nanos_,
                  .last_unix_nanos = last_unix_nanos_};
}

void GaugeLedger::AccountPending() const {
  // Bodies are taken in batches, so arrivals keep flowing while a batch is parsed.
  for (;;) {
    std::deque<Pending> batch;
    {
      std::lock_guard<std::mutex> lock(arrival_mu_);
      if (pending_.empty()) return;
      batch.swap(pending_);
      pending_bytes_ = 0;
    }
    for (Pending& p : batch) {
      Account(p.user, p.body);
      std::string().swap(p.body);  // Give the memory back as we go.
    }
  }
}

bool GaugeLedger::Account(std::string_view user, std::string_view body) const {
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  const bool valid =
      !doc.is_discarded() && doc.is_object() && doc.contains("gauges") && doc["gauges"].is_array();
  if (!valid) {
    ++bad_requests_;
    return false;
  }
  std::string identity;
  for (const json& g : doc["gauges"]) {
    if (!g.is_object() || !g.contains("name") || !g["name"].is_string()) continue;
    const std::string& name = g["name"].get_ref<const std::string&>();
    std::string source;
    if (g.contains("source") && g["source"].is_string()) source = g["source"].get<std::string>();
    const std::string time = g.contains("measure_time") ? g["measure_time"].dump() : "";
    identity.clear();
    identity.append(user);
    identity.push_back('\0');
    identity.append(name);
    identity.push_back('\0');
    identity.append(source);
    identity.push_back('\0');
    identity.append(time);
    const std::uint64_t hash = std::hash<std::string>{}(g.dump());
    const bool complex = g.contains("count") && g["count"].is_number();
    ++gauges_;
    const auto [it, inserted] = identities_.try_emplace(identity, hash);
    if (!inserted) {
      ++(it->second == hash ? duplicates_identical_ : duplicates_conflicting_);
      continue;
    }
    Totals& t = series_[{per_tenant_ ? std::string(user) : std::string(), name, source}];
    ++t.gauges;
    if (complex) {
      const auto count = static_cast<std::uint64_t>(std::llround(g["count"].get<double>()));
      ++t.complex_gauges;
      ++complex_gauges_;
      t.count_sum += count;
      count_sum_ += count;
      t.sum_sum += g.contains("sum") && g["sum"].is_number() ? g["sum"].get<double>() : 0;
    } else {
      t.value_sum += g.contains("value") && g["value"].is_number() ? g["value"].get<double>() : 0;
    }
  }
  return true;
}

json GaugeLedger::Stats() const {
  std::lock_guard<std::mutex> ledger_lock(ledger_mu_);
  AccountPending();
  std::lock_guard<std::mutex> lock(arrival_mu_);
  json users = json::object();
  for (const auto& [user, n] : users_) users[user] = n;
  return {{"requests", requests_},
          {"bad_requests", bad_requests_ + refused_at_arrival_},
          {"bytes", bytes_},
          {"gauges", gauges_},
          {"complex_gauges", complex_gauges_},
          {"series", series_.size()},
          {"count_sum", count_sum_},
          {"duplicates_identical", duplicates_identical_},
          {"duplicates_conflicting", duplicates_conflicting_},
          {"users", std::move(users)},
          {"first_post_unix_s", static_cast<double>(first_unix_nanos_) / 1e9},
          {"last_post_unix_s", static_cast<double>(last_unix_nanos_) / 1e9}};
}

absl::StatusOr<json> GaugeLedger::Check(const json& record) const {
  if (!record.is_object() || record.value("format", "") != "drainmet-loadgen-record/1" ||
      !record.contains("tenants") || !record["tenants"].is_array()) {
    return absl::InvalidArgumentError("not a drainmet-loadgen-record/1 document");
  }
  struct Expected {
    std::uint64_t points = 0;
    double sum = 0;
  };
  // (tenant, name, source) -> kind -> expected
  std::map<SeriesKey, std::map<std::string, Expected>> expected;
  std::set<SeriesKey> derived;  // NAME.median etc. of recorded measures
  for (const json& tenant : record["tenants"]) {
    if (!tenant.is_object() || !tenant.contains("series") || !tenant["series"].is_array()) {
      return absl::InvalidArgumentError("tenants[]: needs a series array");
    }
    const std::string tenant_key = per_tenant_ ? tenant.value("tenant", "") : "";
    for (const json& s : tenant["series"]) {
      if (!s.is_object() || !s.contains("name") || !s.contains("kind") || !s.contains("points")) {
        return absl::InvalidArgumentError("series[]: needs name, kind and points");
      }
      const std::string name = s["name"].get<std::string>();
      const std::string source = s.value("source", "");
      const std::string kind = s["kind"].get<std::string>();
      Expected& e = expected[{tenant_key, name, source}][kind];
      e.points += s["points"].get<std::uint64_t>();
      e.sum += s.value("sum", 0.0);
      if (kind == "measure") {
        for (const char* suffix : {".median", ".perc95", ".perc99"})
          derived.insert({tenant_key, name + suffix, source});
      }
    }
  }

  std::lock_guard<std::mutex> lock(ledger_mu_);
  AccountPending();
  json missing = json::array(), extra = json::array(), sum_mismatch = json::array();
  double missing_total = 0, extra_total = 0;
  std::uint64_t series_expected = 0, series_ok = 0, measure_expected = 0, measure_emitted = 0;
  double count_expected = 0, count_emitted = 0;
  static const Totals kNone;
  for (const auto& [key, kinds] : expected) {
    const auto found = series_.find(key);
    const Totals& got = found == series_.end() ? kNone : found->second;
    for (const auto& [kind, want] : kinds) {
      ++series_expected;
      json entry = {{"tenant", std::get<0>(key)},
                    {"name", std::get<1>(key)},
                    {"source", std::get<2>(key)},
                    {"kind", kind}};
      bool ok = true;
      if (kind == "measure") {
        measure_expected += want.points;
        measure_emitted += got.count_sum;
        entry["expected"] = want.points;
        entry["got"] = got.count_sum;
        if (got.count_sum < want.points) {
          ok = false;
          missing_total += static_cast<double>(want.points - got.count_sum);
          Push(missing, entry);
        } else if (got.count_sum > want.points) {
          ok = false;
          extra_total += static_cast<double>(got.count_sum - want.points);
          Push(extra, entry);
        } else if (!Close(got.sum_sum, want.sum, 1e-9)) {
          ok = false;
          entry["expected_sum"] = want.sum;
          entry["got_sum"] = got.sum_sum;
          Push(sum_mismatch, entry);
        }
      } else if (kind == "count") {
        count_expected += want.sum;
        count_emitted += got.value_sum;
        entry["expected"] = want.sum;
        entry["got"] = got.value_sum;
        if (!Close(got.value_sum, want.sum, 1e-12)) {
          ok = false;
          if (got.value_sum < want.sum) {
            missing_total += want.sum - got.value_sum;
            Push(missing, entry);
          } else {
            extra_total += got.value_sum - want.sum;
            Push(extra, entry);
          }
        }
      } else if (want.points > 0 && got.gauges == 0) {  // sample
        ok = false;
        entry["expected"] = "at least one gauge";
        entry["got"] = 0;
        missing_total += 1;
        Push(missing, entry);
      }
      if (ok) ++series_ok;
    }
  }
  for (const auto& [key, got] : series_) {
    if (expected.count(key) != 0 || derived.count(key) != 0) continue;
    const double amount = got.complex_gauges > 0 ? static_cast<double>(got.count_sum) : got.value_sum;
    extra_total += amount;
    Push(extra, {{"tenant", std::get<0>(key)},
                 {"name", std::get<1>(key)},
                 {"source", std::get<2>(key)},
                 {"kind", "not recorded"},
                 {"gauges", got.gauges},
                 {"got", amount}});
  }
  const bool ok = missing.empty() && extra.empty() && sum_mismatch.empty() && duplicates_conflicting_ == 0;
  return json{{"ok", ok},
              {"series_expected", series_expected},
              {"series_ok", series_ok},
              {"measure_points_expected", measure_expected},
              {"measure_points_emitted", measure_emitted},
              {"count_sum_expected", count_expected},
              {"count_sum_emitted", count_emitted},
              {"missing_total", missing_total},
              {"extra_total", extra_total},
              {"missing", std::move(missing)},
              {"extra", std::move(extra)},
              {"sum_mismatch", std::move(sum_mismatch)},
              {"duplicates_identical", duplicates_identical_},
              {"duplicates_conflicting", duplicates_conflicting_},
              {"unacknowledged_requests", record.value("unacknowledged_requests", std::uint64_t{0})}};
}

absl::StatusOr<std::unique_ptr<Sink>> Sink::Start(const SinkOptions& options) {
  absl::StatusOr<std::pair<std::string, std::uint16_t>> address = http::ParseListenAddress(options.listen);
  if (!address.ok()) {
    return absl::InvalidArgumentError("--listen: " + std::string(address.status().message()));
  }
  std::unique_ptr<Sink> sink(new Sink(options));
  http::ServerOptions server;
  server.address = address->first;
  server.port = address->second;
  server.threads = std::max(1, options.threads);
  server.max_body_bytes = 16u << 20;
  Sink* raw = sink.get();
  absl::StatusOr<std::unique_ptr<http::Server>> started =
      http::Server::Start(server, [raw](const http::Request& request) { return raw->Handle(request); });
  if (!started.ok()) return started.status();
  sink->server_ = *std::move(started);
  return sink;
}

Sink::~Sink() { Stop(); }

void Sink::Stop() {
  if (server_) server_->Stop();
}

absl::StatusOr<json> Sink::CheckFile(const std::string& path) const {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  const json record = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (record.is_discarded()) return absl::InvalidArgumentError(path + ": not JSON");
  return ledger_.Check(record);
}

http::Response Sink::Handle(const http::Request& request) {
  http::Response response;
  response.content_type = "application/json";
  const std::string_view path = request.Path();
  if (path == "/v1/metrics" && request.method == "POST") {
    std::string user;
    if (std::optional<std::string_view> auth = request.Header("Authorization")) {
      if (std::optional<config::BasicCredentials> credentials = config::ParseBasicAuthorization(*auth)) {
        user = credentials->user;
      }
    }
    if (ledger_.Enqueue(user, request.body)) {
      response.body = "{}";
    } else {
      response.status = 400;
      response.body = R"({"errors":{"request":["expected a JSON object with a gauges array"]}})";
    }
    return response;
  }
  if (path == "/arrivals" && request.method == "GET") {
    const GaugeLedger::Arrivals a = ledger_.Received();
    response.body = json{{"requests", a.requests},
                         {"bytes", a.bytes},
                         {"pending_requests", a.pending_requests},
                         {"pending_bytes", a.pending_bytes},
                         {"first_post_unix_s", static_cast<double>(a.first_unix_nanos) / 1e9},
                         {"last_post_unix_s", static_cast<double>(a.last_unix_nanos) / 1e9}}
                        .dump();
    return response;
  }
  if (path == "/stats" && request.method == "GET") {
    response.body = ledger_.Stats().dump();
    return response;
  }
  if (path == "/check" && request.method == "GET") {
    if (options_.expect_path.empty()) {
      response.status = 404;
      response.body = R"({"error":"no --expect file"})";
      return response;
    }
    absl::StatusOr<json> result = CheckFile(options_.expect_path);
    if (!result.ok()) {
      response.status = 500;
      response.body = json{{"error", std::string(result.status().message())}}.dump();
      return response;
    }
    response.body = result->dump();
    return response;
  }
  response.status = 404;
  response.body = R"({"error":"not found"})";
  return response;
}

}  // namespace drainmet::loadgen

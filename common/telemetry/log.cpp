#include "common/telemetry/log.h"

#include <unistd.h>

#include <atomic>
#include <mutex>
#include <span>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace drainmet::telemetry {
namespace {

std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

bool NeedsQuoting(std::string_view value) {
  if (value.empty()) return true;
  for (unsigned char c : value) {
    if (c <= 0x20 || c == '=' || c == '"' || c == '\\' || c >= 0x7f) return true;
  }
  return false;
}

}  // namespace

void SetLogLevel(Level level) { g_min_level.store(static_cast<int>(level)); }

bool ParseLogLevel(std::string_view text, Level* level) {
  if (text == "debug")
    *level = Level::kDebug;
  else if (text == "info")
    *level = Level::kInfo;
  else if (text == "warn")
    *level = Level::kWarn;
  else if (text == "error")
    *level = Level::kError;
  else
    return false;
  return true;
}

std::string LogfmtValue(std::string_view value) {
  if (!NeedsQuoting(value)) return std::string(value);
  std::string out = "\"";
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : value) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

namespace {
void Write(Level level, std::string_view msg, std::span<const Field> fields) {
  if (static_cast<int>(level) < g_min_level.load(std::memory_order_relaxed)) return;
  std::string line = "ts=";
  line += absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  line += " level=";
  line += LevelName(level);
  line += " msg=";
  line += LogfmtValue(msg);
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    line += LogfmtValue(value);
  }
  line += '\n';
  // One write(2) per line keeps lines whole when several threads log at once.
  std::size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
}
}  // namespace

void Log(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  Write(level, msg, std::span<const Field>(fields.begin(), fields.size()));
}

void LogOnce(std::string_view reason, std::string_view msg, std::initializer_list<Field> fields) {
  static std::mutex mu;
  static auto* seen = new absl::flat_hash_set<std::string>();
  bool first;
  {
    std::lock_guard<std::mutex> lock(mu);
    // Bounded: past 10k distinct reasons everything goes to debug.
    first = seen->size() < 10000 && seen->emplace(reason).second;
  }
  Level level = first ? Level::kWarn : Level::kDebug;
  if (static_cast<int>(level) < g_min_level.load(std::memory_order_relaxed)) return;
  std::vector<Field> all;
  all.reserve(fields.size() + 1);
  all.emplace_back("reason", reason);
  all.insert(all.end(), fields.begin(), fields.end());
  Write(level, msg, all);
}

}  // namespace drainmet::telemetry

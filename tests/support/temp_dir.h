#pragma once
// A temporary directory for a test, and an atomic file replace. Header-only, test-only.

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>

namespace drainmet::support {

/// A new directory under the system temp dir (mkdtemp), removed with everything in it by
/// the destructor. path() is empty if it could not be made.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "drainmet_test") {
    std::string pattern =
        (std::filesystem::temp_directory_path() / (std::string(prefix) + "_XXXXXX")).string();
    const char* made = ::mkdtemp(pattern.data());
    path_ = made != nullptr ? made : "";
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }

  const std::string& path() const { return path_; }
  /// `path()/name`.
  std::string File(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

/// Replaces `path` atomically (write `path.tmp`, then rename), as a ConfigMap update or an
/// editor does. False when the write or the rename failed.
inline bool ReplaceFile(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.good()) return false;
  }
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  return !error;
}

}  // namespace drainmet::support

#include "app/package_run.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "util/error.h"
#include "util/fs.h"
#include "util/tar_gz.h"

namespace tailor {

namespace fs = std::filesystem;

void run_package(const PackageOptions& o) {
  if (!fs::is_directory(o.model_dir)) throw Error("--model " + o.model_dir + ": not a directory");
  // What tailor serve needs to find at /opt/ml/model: refuse a directory that is not a model.
  for (const char* f : {"config.json", "spiece.model"})
    if (!file_exists(join_path(o.model_dir, f)))
      throw Error(o.model_dir + " has no " + f + ": not a model directory (tailor train writes one to <out>/model)");
  bool weights = false;
  std::vector<TarEntry> entries;
  const fs::path root = fs::path(o.model_dir);
  // Links are followed (a Hugging Face cache's snapshot is links into its blobs); sorted: the same
  // directory gives the same archive.
  for (const auto& e : fs::recursive_directory_iterator(root, fs::directory_options::follow_directory_symlink)) {
    std::string rel = e.path().lexically_relative(root).generic_string();  // the link's own name, not its target's
    std::error_code ec;
    if (fs::equivalent(e.path(), fs::path(o.out), ec)) continue;  // an archive written into the directory itself
    if (e.is_directory()) {
      entries.push_back({rel, ""});
    } else if (e.is_regular_file()) {  // follows links
      entries.push_back({rel, e.path().string()});
      weights = weights || (rel.size() > 12 && rel.compare(rel.size() - 12, 12, ".safetensors") == 0);
    } else {
      throw Error(e.path().string() + ": not a file or directory (a broken link?)");
    }
  }
  if (!weights) throw Error(o.model_dir + " has no .safetensors weights");
  std::sort(entries.begin(), entries.end(), [](const TarEntry& a, const TarEntry& b) { return a.name < b.name; });
  int64_t bytes = write_tar_gz(o.out, entries);
  std::printf("packaged %zu entries (%.1f MB) of %s into %s (%.1f MB)\n", entries.size(), bytes / 1e6,
              o.model_dir.c_str(), o.out.c_str(), static_cast<double>(fs::file_size(o.out)) / 1e6);
}

}  // namespace tailor

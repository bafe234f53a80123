#include "write/describe.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "catalog/catalog_reader.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/progress.h"
#include "util/text.h"

namespace tailor {

using ordered_json = nlohmann::ordered_json;

std::vector<Product> read_catalog_products(const CatalogSource& source, const CatalogQuery& query) {
  const std::vector<AttributeSpec> no_attributes;
  CatalogQueryAttributes what;
  what.attributes = query.read_attributes ? query.attributes : no_attributes;
  what.article_types = std::set<std::string>(query.article_types.begin(), query.article_types.end());
  std::unique_ptr<CatalogReader> reader = open_catalog(source, what);
  DownloadCache cache(source.download);
  std::set<std::string> wanted_ids(query.ids.begin(), query.ids.end());
  std::vector<Product> out;
  CatalogRow row;
  while (reader->next(&row)) {
    // A description run covers the catalog it is given: a row it cannot read stops it (prepare, which
    // builds a dataset, skips such rows instead).
    if (!row.bad_reason.empty()) throw Error(row.where + ": " + row.bad_detail);
    if (!wanted_ids.empty() && !wanted_ids.count(row.id)) continue;
    CatalogProduct cp = reader->product(row);
    if (!cp.type_selected) continue;
    Product p;
    p.id = row.id;
    p.image_path = first_existing_image(cp.images);
    if (p.image_path.empty()) p.error = "missing image: " + row.where + " names no image";
    bool remote = false;
    for (const auto& c : cp.images) remote = remote || is_remote_location(c);
    if (remote) {  // fetched once into the cache, as prepare does
      LocatedImage img = locate_image(cp.images, &cache);
      p.image_path = img.path.empty() ? img.location : img.path;
      if (img.path.empty()) p.error = img.reason + " " + img.location + ": " + img.detail;
    }
    // Without the catalog's attributes (a model predicts them) the JSON is needed for nothing but
    // the type, which the CSV gives too.
    if (query.read_attributes && !cp.problem.empty()) p.error = cp.problem + " " + cp.problem_file + ": " + cp.problem_detail;
    if (query.read_attributes && cp.problem.empty())
      for (const auto& [a, value] : cp.values) p.attributes.push_back({query.attributes[a].name, value});
    // A value the task does not allow is no fact to describe with, and no silent gap either.
    if (query.read_attributes && cp.problem.empty() && !cp.not_allowed.empty())
      p.error = "value not allowed: " + row.where + ": " + query.attributes[cp.not_allowed.front().first].name + " \"" +
                cp.not_allowed.front().second + "\"";
    if (!is_missing_value(cp.article_type)) p.attributes.push_back({"articleType", cp.article_type});
    out.push_back(std::move(p));
    if (query.limit > 0 && static_cast<int64_t>(out.size()) >= query.limit) break;
  }
  if (!wanted_ids.empty() && out.size() < wanted_ids.size()) {
    std::set<std::string> found;
    for (const auto& p : out) found.insert(p.id);
    for (const auto& id : query.ids)
      if (!found.count(id))
        throw Error(reader->path() + ": no product with id " + id +
                    (what.article_types.empty() ? "" : " of the selected article types"));
  }
  return out;
}

std::vector<Product> products_from_images(const std::vector<std::string>& image_paths) {
  std::vector<Product> out;
  std::map<std::string, std::string> seen;
  for (const auto& path : image_paths) {
    Product p;
    p.id = std::filesystem::path(path).stem().string();
    p.image_path = path;
    if (p.id.empty()) throw Error("cannot take a product id from the image path \"" + path + "\"");
    auto it = seen.find(p.id);
    if (it != seen.end()) throw Error("two images give the product id " + p.id + ": " + it->second + " and " + path);
    seen[p.id] = path;
    if (!file_exists(path)) p.error = "missing image " + path;
    out.push_back(std::move(p));
  }
  return out;
}

ResumeState read_describe_output(const std::string& jsonl_path) {
  ResumeState st;
  if (!file_exists(jsonl_path)) return st;
  if (!std::filesystem::is_regular_file(jsonl_path))
    throw Error(jsonl_path + " is not a regular file; describe writes its output to a file of its own");
  std::string text = read_file(jsonl_path);
  size_t keep = text.size();
  if (!text.empty() && text.back() != '\n') {
    // A torn line from a crash (e.g. a disk full mid-write): dropped (below, once every whole line
    // is known to be describe's) so the product is redone.
    size_t nl = text.rfind('\n');
    keep = nl == std::string::npos ? 0 : nl + 1;
  }
  size_t start = 0;
  int line_no = 0;
  while (start < keep) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl - start);
    start = nl + 1;
    ++line_no;
    if (trim(line).empty()) continue;
    // What describe_products writes: id, attributes, description and writer (others may follow).
    auto j = nlohmann::json::parse(line, nullptr, false);
    bool record = !j.is_discarded() && j.is_object() && j.contains("id") && j["id"].is_string() &&
                  j.contains("attributes") && j["attributes"].is_object() && j.contains("description") &&
                  j["description"].is_string() && j.contains("writer") && j["writer"].is_string();
    if (!record)
      throw Error(jsonl_path + ":" + std::to_string(line_no) +
                  ": not a describe record (a JSON object with \"id\", \"attributes\", \"description\" and "
                  "\"writer\"): this file was not written by tailor describe; use another --output");
    st.ids.push_back(j["id"].get<std::string>());
  }
  if (keep < text.size()) {
    st.dropped_partial_bytes = static_cast<int64_t>(text.size() - keep);
    if (::truncate(jsonl_path.c_str(), static_cast<off_t>(keep)) != 0)
      throw Error("cannot drop the partial last line of " + jsonl_path + ": " + std::strerror(errno));
  }
  return st;
}

void write_describe_csv(const std::string& jsonl_path, const std::string& csv_path) {
  std::vector<ordered_json> records;
  std::vector<std::string> attr_cols;
  std::istringstream in(file_exists(jsonl_path) ? read_file(jsonl_path) : std::string());
  std::string line;
  while (std::getline(in, line)) {
    if (trim(line).empty()) continue;
    ordered_json j = ordered_json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(jsonl_path + ": a line is not JSON");
    if (j.contains("attributes") && j["attributes"].is_object())
      for (auto it = j["attributes"].begin(); it != j["attributes"].end(); ++it)
        if (std::find(attr_cols.begin(), attr_cols.end(), it.key()) == attr_cols.end()) attr_cols.push_back(it.key());
    records.push_back(std::move(j));
  }
  // Columns in the usual attribute order, then any others as they first appeared.
  std::vector<std::string> ordered;
  for (const auto& spec : default_attributes()) ordered.push_back(spec.name);
  ordered.push_back("articleType");
  std::stable_sort(attr_cols.begin(), attr_cols.end(), [&](const std::string& a, const std::string& b) {
    size_t ia = std::find(ordered.begin(), ordered.end(), a) - ordered.begin();
    size_t ib = std::find(ordered.begin(), ordered.end(), b) - ordered.begin();
    return ia < ib;
  });
  auto str = [](const ordered_json& j, const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
  };
  std::string out = "id";
  for (const auto& c : attr_cols) out += "," + csv_field(c);
  out += ",description,writer,model\n";
  for (const auto& r : records) {
    out += csv_field(str(r, "id"));
    for (const auto& c : attr_cols) {
      std::string v;
      if (r.contains("attributes") && r["attributes"].contains(c) && r["attributes"][c].is_string())
        v = r["attributes"][c].get<std::string>();
      out += "," + csv_field(v);
    }
    out += "," + csv_field(str(r, "description")) + "," + csv_field(str(r, "writer")) + "," +
           csv_field(str(r, "model")) + "\n";
  }
  write_file_atomic(csv_path, out);
}

ProductAttributes writer_facts(const Product& p, bool doubtful_to_writer) {
  ProductAttributes facts;
  for (const auto& a : p.attributes)
    if (doubtful_to_writer || std::find(p.doubtful.begin(), p.doubtful.end(), a.name) == p.doubtful.end())
      facts.push_back(a);
  return facts;
}

std::string describe_record_line(const Product& p, const std::string& description, const std::string& writer_name,
                                 const std::string& writer_model, const std::string& attributes_from) {
  ordered_json line;
  line["id"] = p.id;
  line["attributes"] = ordered_json::object();
  for (const auto& a : p.attributes) line["attributes"][a.name] = a.value;
  if (!p.confidence.empty()) {
    line["confidence"] = ordered_json::object();
    for (const auto& a : p.attributes)
      if (p.confidence.count(a.name)) line["confidence"][a.name] = p.confidence.at(a.name);
    line["needs_review"] = !p.doubtful.empty();
    line["doubtful"] = p.doubtful;
  }
  line["description"] = description;
  line["writer"] = writer_name;
  line["model"] = writer_model;
  line["attributes_from"] = attributes_from;
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

DescribeOutput::DescribeOutput(const std::string& jsonl_path, const std::function<void(const std::string&)>& log)
    : path_(jsonl_path) {
  if (jsonl_path.empty()) throw Error("describe needs an output path (--output)");
  std::string parent = std::filesystem::path(jsonl_path).parent_path().string();
  if (!parent.empty()) make_dirs(parent);
  // One run per output: a second one would write every product again (duplicate ids).
  try {
    lock_ = std::make_unique<FileLock>(jsonl_path + ".lock");
  } catch (const Error& e) {
    throw Error("another tailor describe is writing " + jsonl_path + " (" + e.what() +
                "); wait for it to finish or choose another --output");
  }
  ResumeState resume = read_describe_output(jsonl_path);
  dropped_partial_bytes_ = resume.dropped_partial_bytes;
  if (resume.dropped_partial_bytes > 0 && log)
    log("describe: dropped a partial last line (" + std::to_string(resume.dropped_partial_bytes) + " bytes) from " +
        jsonl_path + ", left by an interrupted run");
  ids_.insert(resume.ids.begin(), resume.ids.end());
}

DescribeOutput::~DescribeOutput() = default;

bool DescribeOutput::has(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return ids_.count(id) > 0;
}

bool DescribeOutput::append(const Product& p, const std::string& description, const std::string& writer_name,
                            const std::string& writer_model, const std::string& attributes_from) {
  std::string line = describe_record_line(p, description, writer_name, writer_model, attributes_from);
  std::lock_guard<std::mutex> lock(mu_);
  if (ids_.count(p.id)) return false;  // every product once, whichever path described it
  append_line_durable(path_, line);
  ids_.insert(p.id);
  return true;
}

std::string DescribeSummary::text() const {
  std::string s = "describe: " + std::to_string(total) + " products: " + std::to_string(done) + " written, " +
                  std::to_string(skipped) + " skipped (already in the output), " + std::to_string(failed) + " failed";
  if (not_attempted > 0) s += ", " + std::to_string(not_attempted) + " not attempted (stopped early)";
  s += "\n";
  if (usage.answers > 0)
    s += "  tokens used (the API's counts, " + std::to_string(usage.answers) + " answers): " +
         std::to_string(usage.input_tokens) + " input, " + std::to_string(usage.output_tokens) + " output\n";
  if (dropped_partial_bytes > 0)
    s += "  dropped a partial last line (" + std::to_string(dropped_partial_bytes) +
         " bytes) left by an interrupted run; that product was redone\n";
  for (const auto& f : failures) {
    s += "  failed (" + std::to_string(f.second.size()) + "): " + f.first + " [ids:";
    for (size_t i = 0; i < f.second.size() && i < 8; ++i) s += " " + f.second[i];
    if (f.second.size() > 8) s += " ...";
    s += "]\n";
  }
  return s;
}

// A small bounded queue between the attribute producer and the writer threads.
struct ProductQueue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Product> items;
  size_t capacity = 8;
  bool closed = false;

  void push(Product p) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return items.size() < capacity || closed; });
    if (closed) return;
    items.push_back(std::move(p));
    cv.notify_all();
  }
  bool pop(Product& p) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return !items.empty() || closed; });
    if (items.empty()) return false;
    p = std::move(items.front());
    items.pop_front();
    cv.notify_all();
    return true;
  }
  void close() {
    std::lock_guard<std::mutex> lock(mu);
    closed = true;
    cv.notify_all();
  }
};

std::vector<Product> predict_attributes(std::vector<Product> ready, Answerer& answerer, const DescribeOptions& options,
                                        const std::function<void(const std::string&, const std::string&)>& failed) {
  const auto& specs = answerer.task().attributes;
  std::vector<AnswerRequest> requests;
  std::vector<Product> predicted;
  for (auto& p : ready) {
    std::shared_ptr<const ImageRGB> image;
    try {
      image = std::make_shared<const ImageRGB>(options.load_image(p.image_path));
    } catch (const std::exception& e) {
      failed(p.id, e.what());
      continue;
    }
    for (const auto& spec : specs) requests.push_back(attribute_request(answerer.task(), spec, image, options.answer_mode));
    predicted.push_back(p);
  }
  if (predicted.empty()) return predicted;
  try {
    std::vector<Answer> answers = answerer.answer(requests, options.generation);
    if (answers.size() != requests.size())
      throw Error("the model returned " + std::to_string(answers.size()) + " answers for " +
                  std::to_string(requests.size()) + " questions");
    size_t a = 0;
    for (auto& p : predicted) {
      // Keep the product type from the catalog (not a predicted attribute); predictions first.
      ProductAttributes kept = p.attributes;
      p.attributes.clear();
      for (const auto& spec : specs) {
        const Answer& answer = answers[a++];
        std::string v = trim(parse_answer(answer.text, spec.name).second);
        if (is_missing_value(v)) continue;
        p.attributes.push_back({spec.name, v});
        if (!answer.has_confidence()) continue;
        p.confidence[spec.name] = answer.confidence;
        if (answer.confidence < review_threshold(answerer.task(), spec.name, options)) p.doubtful.push_back(spec.name);
      }
      for (const auto& k : kept) p.attributes.push_back(k);
    }
  } catch (const std::exception& e) {
    for (const auto& p : predicted) failed(p.id, std::string("attribute prediction failed: ") + e.what());
    predicted.clear();
  }
  return predicted;
}

DescribeSummary describe_products(const std::vector<Product>& products, const Writer& writer, Answerer* answerer,
                                  const DescribeOptions& options) {
  DescribeOutput output(options.output_jsonl, options.log ? options.log : [](const std::string& s) {
    std::fprintf(stderr, "%s\n", s.c_str());
  });
  DescribeSummary sum = describe_into(output, products, writer, answerer, options);
  if (!options.output_csv.empty()) write_describe_csv(options.output_jsonl, options.output_csv);
  return sum;
}

DescribeSummary describe_into(DescribeOutput& output, const std::vector<Product>& products, const Writer& writer,
                              Answerer* answerer, const DescribeOptions& options) {
  if (options.concurrency < 1) throw Error("--concurrency must be at least 1");
  if (options.batch_size < 1) throw Error("--batch-size must be at least 1");
  if (answerer && !options.load_image) throw Error("describe with a model needs an image loader");
  auto log = [&](const std::string& s) {
    if (options.log) options.log(s);
    else std::fprintf(stderr, "%s\n", s.c_str());
  };
  DescribeSummary sum;
  sum.total = static_cast<int64_t>(products.size());
  sum.dropped_partial_bytes = output.dropped_partial_bytes();
  const TokenUsage usage_before = writer.usage();

  std::mutex mu;  // guards sum and consecutive_failures (the output has its own lock)
  int consecutive_failures = 0;
  std::atomic<bool> stop{false};
  auto fail = [&](const std::string& id, const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu);
    sum.failed++;
    sum.failures[reason].push_back(id);
  };

  std::vector<const Product*> todo;
  for (const auto& p : products) {
    if (output.has(p.id)) sum.skipped++;
    else todo.push_back(&p);
  }
  std::unique_ptr<Progress> progress;
  if (options.show_progress) progress = std::make_unique<Progress>("describe", static_cast<int64_t>(todo.size()), "products");
  auto tick = [&] {
    if (progress) progress->add(1);
  };

  std::string attributes_from =
      !options.attributes_from.empty() ? options.attributes_from : answerer ? answerer->name() : "catalog";
  ProductQueue queue;
  queue.capacity = static_cast<size_t>(options.concurrency) * 2;
  std::vector<std::thread> workers;
  for (int t = 0; t < options.concurrency; ++t) {
    workers.emplace_back([&] {
      Product p;
      while (queue.pop(p)) {
        if (stop) {
          std::lock_guard<std::mutex> lock(mu);
          sum.not_attempted++;
          continue;
        }
        try {
          if (p.attributes.empty()) throw Error("no attributes to describe");
          ProductAttributes facts = writer_facts(p, options.doubtful_to_writer);
          // Nothing sure enough to write from: the line still records the predictions, for review.
          std::string text = facts.empty() ? std::string() : writer.write(facts);
          bool written = output.append(p, text, writer.name(), writer.model(), attributes_from);
          std::lock_guard<std::mutex> lock(mu);
          if (written) sum.done++;
          else sum.skipped++;
          consecutive_failures = 0;
        } catch (const std::exception& e) {
          fail(p.id, e.what());
          std::lock_guard<std::mutex> lock(mu);
          if (++consecutive_failures >= options.stop_after_consecutive_failures && !stop) {
            stop = true;
            log("describe: stopping after " + std::to_string(consecutive_failures) +
                " failures in a row; the last: " + e.what());
          }
        }
        tick();
      }
    });
  }

  // Producer: attributes from the catalog as they are, or predicted in batches of photos.
  size_t batch = answerer ? static_cast<size_t>(options.batch_size) : 1;
  for (size_t i = 0; i < todo.size(); i += batch) {
    if (stop) {
      std::lock_guard<std::mutex> lock(mu);
      sum.not_attempted += static_cast<int64_t>(todo.size() - i);
      break;
    }
    size_t end = std::min(todo.size(), i + batch);
    std::vector<Product> ready;
    for (size_t k = i; k < end; ++k) {
      if (!todo[k]->error.empty()) {
        fail(todo[k]->id, todo[k]->error);
        tick();
      } else {
        ready.push_back(*todo[k]);
      }
    }
    if (answerer && !ready.empty())
      ready = predict_attributes(std::move(ready), *answerer, options, [&](const std::string& id, const std::string& why) {
        fail(id, why);
        tick();
      });
    for (auto& p : ready) queue.push(std::move(p));
  }
  queue.close();
  for (auto& w : workers) w.join();
  if (progress) progress->finish();
  // This run's share of the writer's token counts (the writer may have served earlier runs).
  TokenUsage after = writer.usage();
  sum.usage.input_tokens = after.input_tokens - usage_before.input_tokens;
  sum.usage.output_tokens = after.output_tokens - usage_before.output_tokens;
  sum.usage.answers = after.answers - usage_before.answers;
  return sum;
}

double review_threshold(const TaskInfo& task, const std::string& attribute, const DescribeOptions& o) {
  if (o.review_below_override >= 0) return o.review_below_override;
  auto t = task.threshold.find(attribute);
  return t != task.threshold.end() ? t->second : o.review_below;
}

DescribedProduct describe_one(const Writer& writer, const std::map<std::string, std::string>& attributes) {
  DescribedProduct d;
  std::set<std::string> used;
  auto take = [&](const std::string& name) {
    auto it = attributes.find(name);
    if (it == attributes.end() || used.count(name)) return;
    used.insert(name);
    std::string v = trim(it->second);
    if (!is_missing_value(v)) d.attributes.push_back({name, v});
  };
  for (const auto& spec : default_attributes()) take(spec.name);
  take("articleType");
  for (const auto& kv : attributes) take(kv.first);  // the rest, by name
  if (d.attributes.empty()) throw Error("no attributes to describe (all missing or \"NA\")");
  d.description = writer.write(d.attributes);
  d.writer = writer.name();
  d.model = writer.model();
  return d;
}

}  // namespace tailor

#include "write/batch.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "util/error.h"
#include "util/fs.h"
#include "util/text.h"

namespace tailor {

using json = nlohmann::json;

std::unique_ptr<BatchService> make_batch_service(const WriterConfig& config, const BatchOptions& options) {
  if (config.kind == "bedrock") return make_bedrock_batch(config, options);
  if (config.kind == "openai") return make_openai_batch(config, options);
  throw Error("--batch needs --writer bedrock (Bedrock batch inference) or --writer openai (OpenAI's Batch API), not \"" +
              config.kind + "\"");
}

// --- the state folder ---------------------------------------------------------------------------

static json product_json(const Product& p) {
  json j;
  j["id"] = p.id;
  j["attributes"] = json::array();
  for (const auto& a : p.attributes) j["attributes"].push_back({a.name, a.value});
  j["confidence"] = p.confidence;
  j["doubtful"] = p.doubtful;
  return j;
}

// `where` names the file and line for an error.
static Product product_from_json(const json& j, const std::string& where) {
  Product p;
  try {
    p.id = j.at("id").get<std::string>();
    for (const auto& a : j.at("attributes")) p.attributes.push_back({a.at(0).get<std::string>(), a.at(1).get<std::string>()});
    p.confidence = j.at("confidence").get<std::map<std::string, double>>();
    p.doubtful = j.at("doubtful").get<std::vector<std::string>>();
  } catch (const json::exception& e) {
    throw Error(where + ": not a product record of describe --batch (" + e.what() + ")");
  }
  return p;
}

struct FailedRecord {
  std::string reason;
  Product product;
};

// <output>.batch/state.json: the service and model it was made for, the running job, the records
// that failed in finished jobs, and each finished job's counts.
struct BatchState {
  std::string path;
  std::string service, model, attributes_from;
  bool has_job = false;
  BatchJob job;
  std::map<std::string, FailedRecord> failed;  // product id →
  json finished = json::array();

  void save() const {
    json j;
    j["service"] = service;
    j["model"] = model;
    j["attributes_from"] = attributes_from;
    if (has_job)
      j["job"] = {{"name", job.name},     {"phase", job.phase},   {"input", job.input},
                  {"output", job.output}, {"error_output", job.error_output},
                  {"id", job.id},         {"status", job.status}, {"message", job.message},
                  {"records", job.records}};
    else
      j["job"] = nullptr;
    j["failed"] = json::object();
    for (const auto& [id, f] : failed) j["failed"][id] = {{"reason", f.reason}, {"product", product_json(f.product)}};
    j["finished"] = finished;
    write_file_atomic(path, j.dump(2) + "\n");
  }
};

static BatchState load_state(const std::string& path) {
  BatchState st;
  st.path = path;
  if (!file_exists(path)) return st;
  json j = json::parse(read_file(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(path + ": not the JSON state of describe --batch");
  try {
    st.service = j.at("service").get<std::string>();
    st.model = j.at("model").get<std::string>();
    st.attributes_from = j.value("attributes_from", "");
    if (!j.at("job").is_null()) {
      const json& b = j["job"];
      st.has_job = true;
      st.job.name = b.at("name").get<std::string>();
      st.job.phase = b.at("phase").get<std::string>();
      st.job.input = b.at("input").get<std::string>();
      st.job.output = b.at("output").get<std::string>();
      st.job.error_output = b.at("error_output").get<std::string>();
      st.job.id = b.at("id").get<std::string>();
      st.job.status = b.at("status").get<std::string>();
      st.job.message = b.at("message").get<std::string>();
      st.job.records = b.at("records").get<int64_t>();
    }
    for (auto it = j.at("failed").begin(); it != j.at("failed").end(); ++it)
      st.failed[it.key()] = {it.value().at("reason").get<std::string>(),
                             product_from_json(it.value().at("product"), path + ": failed." + it.key())};
    st.finished = j.at("finished");
  } catch (const json::exception& e) {
    throw Error(path + ": a field of describe --batch's state is missing or wrong (" + std::string(e.what()) +
                "); it is written by tailor only");
  }
  return st;
}

static std::string records_path(const std::string& dir, const std::string& job) {
  return join_path(dir, job + ".records.jsonl");
}
static std::string input_path(const std::string& dir, const std::string& job) {
  return join_path(dir, job + ".input.jsonl");
}

static std::vector<BatchRecord> load_records(const std::string& path) {
  std::vector<BatchRecord> out;
  int line_no = 0;
  for (const std::string& line : text_lines(read_file(path))) {
    ++line_no;
    if (trim(line).empty()) continue;
    std::string where = path + ":" + std::to_string(line_no);
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("record_id") || !j["record_id"].is_string() ||
        !j.contains("product"))
      throw Error(where + ": not a record of describe --batch");
    out.push_back({j["record_id"].get<std::string>(), product_from_json(j["product"], where)});
  }
  return out;
}

// tailor-YYYYMMDD-HHMMSS-xxxxxx: a valid Bedrock job name and clientRequestToken, unique per job.
static std::string new_job_name() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char when[32];
  std::strftime(when, sizeof when, "%Y%m%d-%H%M%S", &tm);
  std::random_device rd;
  char tail[16];
  std::snprintf(tail, sizeof tail, "%06x", static_cast<unsigned>(rd()) & 0xffffffu);
  return std::string("tailor-") + when + "-" + tail;
}

// --- the run ------------------------------------------------------------------------------------

namespace {

struct BatchRun {
  DescribeOutput& output;
  const WriterConfig& config;
  const Writer& on_demand;
  const DescribeOptions& options;
  const BatchOptions& batch;
  BatchService& service;
  BatchState& state;
  std::string dir;
  DescribeSummary& sum;
  std::function<void(const std::string&)> log;

  // Polls `state.job` until it ends, then writes its descriptions and records its failures.
  void finish_job() {
    BatchJob& job = state.job;
    std::vector<BatchRecord> records = load_records(records_path(dir, job.name));
    if (job.phase != "submitted") {
      log("describe: submitting " + std::to_string(records.size()) + " records to " + service.name() + " as job " +
          job.name);
      service.submit(job, read_file(input_path(dir, job.name)), [&] { state.save(); });
      log("describe: " + service.name() + " job " + job.id + " submitted");
    } else {
      log("describe: resuming " + service.name() + " job " + job.id + " (" + job.status + ")");
    }
    auto started = std::chrono::steady_clock::now();
    std::string last;
    BatchPoll poll;
    while (true) {
      std::string status_before = job.status;
      poll = service.poll(job);
      if (job.status != status_before) state.save();
      if (poll.progress != last) {
        long secs = static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::steady_clock::now() - started).count());
        log("describe: batch job " + job.id + ": " + poll.progress + " (" + std::to_string(secs) + " s)");
        last = poll.progress;
      }
      if (poll.finished) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(batch.poll_seconds * 1000)));
    }

    std::map<std::string, BatchResult> by_record;
    if (poll.has_output)
      for (auto& r : service.results(job)) by_record[r.record_id] = std::move(r);
    TokenUsage job_usage;
    int64_t written = 0, failed = 0;
    for (const auto& rec : records) {
      auto it = by_record.find(rec.record_id);
      std::string reason;
      if (!poll.has_output)
        reason = service.name() + " job " + job.id + " ended " + job.status + (job.message.empty() ? "" : ": " + job.message);
      else if (it == by_record.end())
        reason = service.name() + " job " + job.id + ": the record is missing from the job's output";
      else if (!it->second.error.empty())
        reason = it->second.error;
      if (it != by_record.end()) job_usage.add(it->second.usage);
      if (reason.empty() && it->second.text.empty())
        reason = service.name() + " job " + job.id + ": the record has an empty description";
      if (!reason.empty()) {
        state.failed[rec.product.id] = {reason, rec.product};
        ++failed;
        continue;
      }
      state.failed.erase(rec.product.id);
      if (output.append(rec.product, it->second.text, config.kind, state.model, state.attributes_from)) {
        ++written;
        sum.done++;
      }
    }
    sum.usage.add(job_usage);
    sum.batch_usage.add(job_usage);
    state.finished.push_back({{"name", job.name}, {"id", job.id}, {"status", job.status}, {"records", records.size()},
                              {"written", written}, {"failed", failed},
                              {"input_tokens", job_usage.input_tokens}, {"output_tokens", job_usage.output_tokens}});
    const std::string job_id = job.id, job_name = job.name;
    state.has_job = false;
    state.job = BatchJob{};
    state.save();
    // Their products are in the output or in the state's failed records now.
    remove_tree(records_path(dir, job_name));
    remove_tree(input_path(dir, job_name));
    log("describe: batch job " + job_id + ": " + std::to_string(written) + " descriptions written, " +
        std::to_string(failed) + " records failed; tokens " + std::to_string(job_usage.input_tokens) + " input, " +
        std::to_string(job_usage.output_tokens) + " output");
  }

  // Writes the job's records and input locally, then records it in the state (phase "prepared").
  void prepare_job(const std::vector<Product>& products) {
    BatchJob job;
    job.name = new_job_name();
    job.phase = "prepared";
    std::string records, input;
    int64_t n = 0;
    for (const auto& p : products) {
      char rid[24];
      std::snprintf(rid, sizeof rid, "R%010lld", static_cast<long long>(++n));
      records += json{{"record_id", rid}, {"product", product_json(p)}}.dump() + "\n";
      input += service.input_line(rid, writer_facts(p, options.doubtful_to_writer)) + "\n";
    }
    job.records = n;
    write_file_atomic(records_path(dir, job.name), records);
    write_file_atomic(input_path(dir, job.name), input);
    state.job = job;
    state.has_job = true;
    state.save();
  }
};

}  // namespace

DescribeSummary describe_products_batch(const std::vector<Product>& products, const WriterConfig& config,
                                        const Writer& on_demand, Answerer* answerer, const DescribeOptions& options,
                                        const BatchOptions& batch, BatchService& service) {
  if (batch.poll_seconds <= 0) throw Error("--batch-poll must be a positive number of seconds");
  auto log = [&](const std::string& s) {
    if (options.log) options.log(s);
    else std::fprintf(stderr, "%s\n", s.c_str());
  };
  DescribeOutput output(options.output_jsonl, log);
  const std::string dir = options.output_jsonl + ".batch";
  make_dirs(dir);
  BatchState state = load_state(join_path(dir, "state.json"));
  const std::string model = on_demand.model();
  const std::string attributes_from = answerer ? answerer->name() : "catalog";
  // A running job belongs to the writer and model it was made with: finishing it with others would
  // label its lines wrongly.
  if (state.has_job && (state.service != config.kind || state.model != model))
    throw Error(state.path + " holds " + state.service + " job " + state.job.name + " for model " + state.model +
                ", not --writer " + config.kind + " --writer-model " + model +
                ": run with those to finish it, or choose another --output");
  state.service = config.kind;
  state.model = model;
  state.attributes_from = attributes_from;

  DescribeSummary sum;
  sum.total = static_cast<int64_t>(products.size());
  sum.dropped_partial_bytes = output.dropped_partial_bytes();
  for (const auto& p : products)
    if (output.has(p.id)) sum.skipped++;
  BatchRun run{output, config, on_demand, options, batch, service, state, dir, sum, log};

  // 1. A job an earlier run left: finish it first (its products are in its records file).
  if (state.has_job) run.finish_job();

  // 2. Products neither in the output nor failed in a finished job: one new job.
  std::vector<Product> todo, empty_facts;
  for (const auto& p : products) {
    if (output.has(p.id) || state.failed.count(p.id)) continue;
    if (!p.error.empty()) {
      sum.failed++;
      sum.failures[p.error].push_back(p.id);
      continue;
    }
    todo.push_back(p);
  }
  if (answerer && !todo.empty()) {
    std::vector<Product> predicted;
    for (size_t i = 0; i < todo.size(); i += static_cast<size_t>(options.batch_size)) {
      std::vector<Product> part(todo.begin() + static_cast<long>(i),
                                todo.begin() + static_cast<long>(std::min(todo.size(), i + options.batch_size)));
      for (auto& p : predict_attributes(std::move(part), *answerer, options, [&](const std::string& id, const std::string& why) {
             sum.failed++;
             sum.failures[why].push_back(id);
           }))
        predicted.push_back(std::move(p));
    }
    todo = std::move(predicted);
  }
  // Nothing sure enough to write from: the line records the predictions for review, no request.
  std::vector<Product> requests;
  for (auto& p : todo) {
    if (!p.attributes.empty() && writer_facts(p, options.doubtful_to_writer).empty()) {
      if (output.append(p, "", config.kind, model, attributes_from)) sum.done++;
    } else if (p.attributes.empty()) {
      sum.failed++;
      sum.failures["no attributes to describe"].push_back(p.id);
    } else {
      requests.push_back(std::move(p));
    }
  }
  if (!requests.empty()) {
    int64_t minimum = batch.min_records >= 0 ? batch.min_records : service.min_records();
    if (static_cast<int64_t>(requests.size()) < minimum)
      throw Error(service.name() + " needs at least " + std::to_string(minimum) + " records per job, and " +
                  std::to_string(requests.size()) + " products are left to describe: describe them on demand (run "
                  "without --batch), or add products to reach the minimum" +
                  (config.kind == "bedrock" ? " (the minimum is Bedrock's quota \"Minimum number of records per batch "
                                              "inference job\"; --batch-min-records if yours differs)"
                                            : ""));
    run.prepare_job(requests);
    run.finish_job();
  }

  // 3. The records that failed in finished jobs: on demand when asked, else listed as failed.
  std::vector<Product> retry;
  for (const auto& [id, f] : state.failed) {
    if (output.has(id)) continue;
    if (batch.retry_failed) {
      retry.push_back(f.product);
    } else {
      sum.failed++;
      sum.failures[f.reason + " (--retry-failed describes it on demand)"].push_back(id);
    }
  }
  if (!retry.empty()) {
    log("describe: describing " + std::to_string(retry.size()) + " records that failed in batch jobs on demand");
    DescribeOptions on_demand_options = options;
    on_demand_options.attributes_from = state.attributes_from;
    DescribeSummary again = describe_into(output, retry, on_demand, nullptr, on_demand_options);
    sum.done += again.done;
    sum.failed += again.failed;
    sum.not_attempted += again.not_attempted;
    for (auto& [reason, ids] : again.failures)
      for (auto& id : ids) sum.failures[reason].push_back(id);
    sum.usage.add(again.usage);
    for (const auto& p : retry)
      if (output.has(p.id)) state.failed.erase(p.id);
    state.save();
  }
  if (!options.output_csv.empty()) write_describe_csv(options.output_jsonl, options.output_csv);
  return sum;
}

}  // namespace tailor

// `tailor describe --batch`: the products' requests as one batch job at about half the on-demand
// price — Bedrock batch inference (records in S3, CreateModelInvocationJob, output joined by
// recordId) or OpenAI's Batch API (an uploaded file, /v1/batches, output joined by custom_id).
// The run writes describe's usual lines through the same DescribeOutput as the on-demand path.
//
// Resumable: <output>.batch/state.json (written atomically after every step) holds the job's name,
// id/ARN, input and output locations and last status, and the failed records with their reason;
// <output>.batch/<job>.records.jsonl the products of the job (id, attributes, confidences), so a
// killed run started again with the same arguments picks up the same job instead of submitting a
// new one. Creating a job is idempotent across a crash: Bedrock gets the same clientRequestToken,
// and an OpenAI batch is looked up by its input file before another is created.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "write/describe.h"
#include "write/writer.h"

namespace tailor {

struct BatchOptions {
  std::string s3_prefix;         // bedrock: s3://bucket/prefix for the job's input and output
  std::string role_arn;          // bedrock: the service role Bedrock reads and writes S3 with
  std::string control_endpoint;  // bedrock: "" = AWS_ENDPOINT_URL_BEDROCK, AWS_ENDPOINT_URL, regional
  std::string s3_endpoint;       // "" = AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, regional
  bool s3_path_style = false;
  int64_t s3_part_bytes = 8 << 20;  // inputs larger than this are uploaded in parts
  // Bedrock refuses a job with fewer records than its quota "minimum number of records per batch
  // inference job" (100 by default); a run with fewer products left stops with an error saying so.
  int64_t min_records = -1;          // -1 = the service's own minimum (Bedrock 100, OpenAI 1)
  double poll_seconds = 60;          // between status checks
  int timeout_hours = 24;            // Bedrock's timeoutDurationInHours; OpenAI's window is 24h
  bool retry_failed = false;         // describe the failed records of finished jobs on demand
};

// One record of a job: its id in the job and the product it stands for.
struct BatchRecord {
  std::string record_id;  // "R0000000001": alphanumeric, as Bedrock's recordId asks
  Product product;
};

// A job as state.json keeps it.
struct BatchJob {
  std::string name;          // tailor-20261130-174501-1a2b3c: job name, S3 folder, idempotency token
  std::string phase;         // prepared → uploaded → creating → submitted
  std::string input;         // s3://… of the input (bedrock), the input file id (openai)
  std::string output;        // s3://… folder of the output (bedrock), output_file_id (openai)
  std::string error_output;  // openai: error_file_id
  std::string id;            // the job's ARN (bedrock), the batch id (openai)
  std::string status;        // the service's last word: Submitted, InProgress, completed, ...
  std::string message;       // the service's reason for a failed job
  int64_t records = 0;
};

// What a job gave for one record.
struct BatchResult {
  std::string record_id;
  std::string text;   // the description; "" with error
  std::string error;  // why this record has none
  TokenUsage usage;
};

struct BatchPoll {
  bool finished = false;   // a final state
  bool has_output = false; // output (possibly partial) can be read
  std::string progress;    // "InProgress, 40 of 120 records processed"
};

// A batch API: the input line of a record, submit (each step saved by `save`), poll, results.
class BatchService {
 public:
  virtual ~BatchService() = default;
  virtual std::string name() const = 0;  // "Bedrock batch inference", "OpenAI Batch API"
  virtual int64_t min_records() const = 0;
  virtual std::string input_line(const std::string& record_id, const ProductAttributes& facts) const = 0;
  virtual void submit(BatchJob& job, const std::string& input_jsonl, const std::function<void()>& save) = 0;
  virtual BatchPoll poll(BatchJob& job) = 0;
  virtual std::vector<BatchResult> results(const BatchJob& job) = 0;
};

// Checks the configuration (credentials, S3 prefix, role, key) and throws Error naming the flag.
std::unique_ptr<BatchService> make_bedrock_batch(const WriterConfig& config, const BatchOptions& options);
std::unique_ptr<BatchService> make_openai_batch(const WriterConfig& config, const BatchOptions& options);
std::unique_ptr<BatchService> make_batch_service(const WriterConfig& config, const BatchOptions& options);

// Describes every product not yet in options.output_jsonl through batch jobs: first a job left
// running by an earlier run, then one new job for the rest; with retry_failed the records that
// failed in finished jobs are described on demand by `on_demand` (the writer of the same config).
DescribeSummary describe_products_batch(const std::vector<Product>& products, const WriterConfig& config,
                                        const Writer& on_demand, Answerer* answerer, const DescribeOptions& options,
                                        const BatchOptions& batch, BatchService& service);

}  // namespace tailor

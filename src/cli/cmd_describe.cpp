// tailor describe: descriptions for a whole catalog (or a list of photos), resumable. Flags only; the
// work is app/describe_run.h.
#include "app/describe_run.h"
#include "cli/commands.h"
#include "cli/flags.h"

namespace tailor::cli {

void add_describe(CLI::App& app) {
  auto f = std::make_shared<DescribeRunOptions>();
  auto* cmd = app.add_subcommand("describe", "Write product descriptions for a catalog or photos (resumable JSONL)");
  add_catalog_flags(cmd, f->catalog, /*required=*/false, "catalog-");
  cmd->add_option("--images", f->images, "Photos to describe (id = file name without extension)");
  cmd->add_option("--image-list", f->image_list, "File with one photo path per line");
  cmd->add_option("--attributes-from", f->attributes_from, "\"catalog\": use the catalog's own attributes, no model");
  cmd->add_option("--model", f->model_dir, "Model directory: predict the attributes from the photos");
  cmd->add_option("--device", f->device, "Device for --model (cpu, cuda)");
  cmd->add_option("--dtype", f->dtype, "auto, f32, bf16 or f16")->capture_default_str();
  cmd->add_option("--quantize", f->quantize, "Frozen weights: auto (as the model directory has them), none, int8 (per channel) or nf4 (QLoRA's 4-bit, groups of 64)")->capture_default_str();
  cmd->add_option("--batch-size", f->batch_size, "Photos per model pass");
  cmd->add_option("--answer", f->answer, "With --model: choice (likeliest known value + confidence) or free (generated text)")
      ->check(CLI::IsMember({"choice", "free"}));
  cmd->add_option("--review-below", f->review_below,
                  "Mark a product needs_review when a predicted attribute's confidence is below this (default: the model's calibrated threshold, else 0.5)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--doubtful-to-writer", f->doubtful_to_writer, "Give the writer doubtful attributes too (default: left out of its facts)");
  cmd->add_option("--attributes", f->attributes_file, "Task file (JSON) of the attributes to read from the catalog (docs/catalog.md)");
  cmd->add_option("--article-types", f->article_types, "Only these articleType values (e.g. Shirts,Tshirts)")
      ->delimiter(',');
  cmd->add_option("--ids", f->ids, "Only these product ids")->delimiter(',');
  cmd->add_option("--limit", f->limit, "At most this many products (after filtering)");
  cmd->add_option("--output,-o", f->output, "JSONL output (appended; ids already there are skipped)");
  cmd->add_option("--csv", f->csv, "Also write a CSV of all descriptions");
  cmd->add_option("--concurrency", f->concurrency, "Writer calls in flight");
  add_writer_flags(cmd, f->writer, "offline (default), bedrock or openai");
  cmd->add_option("--system-prompt", f->writer.system_prompt, "System prompt");
  cmd->add_option("--system-prompt-file", f->system_prompt_file, "Read the system prompt from a file");
  cmd->add_option("--user-template", f->writer.user_template, "User prompt; {attributes} is replaced");
  cmd->add_option("--max-tokens", f->writer.max_tokens, "Max tokens of a description");
  cmd->add_option("--temperature", f->writer.temperature, "Sampling temperature");
  cmd->add_option("--timeout", f->timeout_s, "Seconds per request (and without data) before giving up");
  cmd->add_option("--connect-timeout", f->connect_timeout_s, "Seconds to connect");
  cmd->add_option("--retries", f->retries, "Retries on throttling, 5xx and network errors");
  cmd->add_flag("--quiet,-q", f->quiet, "No progress bar");
  cmd->add_flag("--batch", f->batch,
                "One batch job at the batch price (about half): Bedrock batch inference (--writer bedrock) or OpenAI's "
                "Batch API (--writer openai); resumable, the job's state in <output>.batch/");
  cmd->add_option("--batch-s3", f->batch_options.s3_prefix, "Bedrock batch: s3://bucket/prefix for the job's records and output");
  cmd->add_option("--batch-role-arn", f->batch_options.role_arn,
                  "Bedrock batch: the IAM service role Bedrock reads and writes --batch-s3 with");
  cmd->add_option("--batch-endpoint-url", f->batch_options.control_endpoint,
                  "Bedrock batch: control-plane endpoint (else AWS_ENDPOINT_URL_BEDROCK, AWS_ENDPOINT_URL, bedrock.{region}.amazonaws.com)");
  cmd->add_option("--batch-s3-endpoint-url", f->batch_options.s3_endpoint,
                  "Bedrock batch: S3 endpoint (else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, s3.{region}.amazonaws.com)");
  cmd->add_option("--batch-poll", f->batch_options.poll_seconds, "Seconds between checks of the batch job's status")
      ->capture_default_str();
  cmd->add_option("--batch-min-records", f->batch_options.min_records,
                  "Fewest records a batch job may have (default: Bedrock's quota of 100; OpenAI 1)");
  cmd->add_flag("--retry-failed", f->batch_options.retry_failed,
                "With --batch: describe the records that failed in finished batch jobs on demand");
  cmd->add_flag("--estimate-only", f->estimate_only, "Print the cost estimate (tokens, on-demand and batch price) and stop");
  cmd->add_option("--prices", f->prices, "Price table (JSON; default docs/prices.json, or $TAILOR_PRICES)");
  cmd->callback([f] {
    f->batch_options.s3_path_style = f->catalog.s3_path_style;  // one flag for how S3 is addressed
    run_describe_products(*f);
  });
}

}  // namespace tailor::cli

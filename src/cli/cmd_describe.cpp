// tailor describe: descriptions for a whole catalog (or a list of photos), resumable. Flags only; the
// work is write/describe.h.
#include <cstdio>

#include "catalog/images.h"
#include "cli/commands.h"
#include "infer/load.h"
#include "util/error.h"
#include "util/fs.h"
#include "write/describe.h"


namespace tailor::cli {

struct DescribeFlags {
  std::string catalog, image_list, attributes_from, model_dir, attributes_file, output = "descriptions.jsonl", csv;
  std::vector<std::string> images, article_types, ids;
  int64_t limit = 0;
  std::string device = "cpu";
  int batch_size = 8, concurrency = 4, retries = 4;
  double timeout_s = 180, connect_timeout_s = 10;
  std::string system_prompt_file;
  bool quiet = false;
  std::string answer = "choice";
  double review_below = -1;
  bool doubtful_to_writer = false;
  WriterConfig writer;
};

static void run_describe(DescribeFlags f) {
  if (f.model_dir.empty() == f.attributes_from.empty())
    throw Error("give exactly one source of attributes: --attributes-from catalog or --model DIR");
  if (!f.attributes_from.empty() && f.attributes_from != "catalog")
    throw Error("--attributes-from takes \"catalog\" (or use --model DIR to predict them)");
  int sources = !f.catalog.empty() + !f.images.empty() + !f.image_list.empty();
  if (sources != 1) throw Error("give exactly one of --catalog DIR, --images FILE..., --image-list FILE");
  if (!f.attributes_from.empty() && f.catalog.empty())
    throw Error("--attributes-from catalog needs --catalog DIR (photos alone have no attributes)");
  if (!f.system_prompt_file.empty()) f.writer.system_prompt = read_file(f.system_prompt_file);

  f.writer.http.max_attempts = f.retries + 1;
  f.writer.http.total_timeout_ms = static_cast<int>(f.timeout_s * 1000);
  f.writer.http.read_timeout_ms = static_cast<int>(f.timeout_s * 1000);
  f.writer.http.connect_timeout_ms = static_cast<int>(f.connect_timeout_s * 1000);
  std::unique_ptr<Writer> writer = make_writer(f.writer);  // fails now on missing keys / region

  std::vector<Product> products;
  if (!f.catalog.empty()) {
    CatalogQuery q;
    if (!f.attributes_file.empty()) q.attributes = load_attribute_specs(f.attributes_file);
    q.article_types = f.article_types;
    q.ids = f.ids;
    q.limit = f.limit;
    q.read_attributes = f.model_dir.empty();
    products = read_catalog_products(f.catalog, q);
  } else {
    std::vector<std::string> paths = f.images;
    if (!f.image_list.empty()) {
      std::string text = read_file(f.image_list);
      size_t start = 0;
      while (start < text.size()) {
        size_t nl = text.find('\n', start);
        if (nl == std::string::npos) nl = text.size();
        std::string l = text.substr(start, nl - start);
        if (!l.empty() && l.back() == '\r') l.pop_back();
        if (!l.empty() && l[0] != '#') paths.push_back(l);
        start = nl + 1;
      }
    }
    if (f.limit > 0 && static_cast<int64_t>(paths.size()) > f.limit) paths.resize(static_cast<size_t>(f.limit));
    products = products_from_images(paths);
  }

  std::unique_ptr<Answerer> answerer;
  DescribeOptions opts;
  if (!f.model_dir.empty()) {
    LoadOptions lo;
    lo.device = f.device;
    answerer = load_answerer(f.model_dir, lo);
    opts.load_image = [](const std::string& path) { return tailor::load_image(path); };
  }
  opts.output_jsonl = f.output;
  opts.output_csv = f.csv;
  opts.concurrency = f.concurrency;
  opts.batch_size = f.batch_size;
  opts.show_progress = !f.quiet;
  opts.answer_mode = parse_answer_mode(f.answer);
  opts.review_below_override = f.review_below;
  opts.doubtful_to_writer = f.doubtful_to_writer;
  DescribeSummary s = describe_products(products, *writer, answerer.get(), opts);
  std::fputs(s.text().c_str(), stdout);
  std::fflush(stdout);
  if (s.failed > 0 || s.not_attempted > 0)
    throw Error(std::to_string(s.failed + s.not_attempted) + " of " + std::to_string(s.total) +
                " products have no description yet (reasons above); run again to retry them");
}

void add_describe(CLI::App& app) {
  auto f = std::make_shared<DescribeFlags>();
  auto* cmd = app.add_subcommand("describe", "Write product descriptions for a catalog or photos (resumable JSONL)");
  cmd->add_option("--catalog", f->catalog, "Catalog directory (styles.csv, styles/<id>.json, images/<id>.jpg)");
  cmd->add_option("--images", f->images, "Photos to describe (id = file name without extension)");
  cmd->add_option("--image-list", f->image_list, "File with one photo path per line");
  cmd->add_option("--attributes-from", f->attributes_from, "\"catalog\": use the catalog's own attributes, no model");
  cmd->add_option("--model", f->model_dir, "Model directory: predict the attributes from the photos");
  cmd->add_option("--device", f->device, "Device for --model (cpu, cuda)");
  cmd->add_option("--batch-size", f->batch_size, "Photos per model pass");
  cmd->add_option("--answer", f->answer, "With --model: choice (likeliest known value + confidence) or free (generated text)")
      ->check(CLI::IsMember({"choice", "free"}));
  cmd->add_option("--review-below", f->review_below,
                  "Mark a product needs_review when a predicted attribute's confidence is below this (default: the model's calibrated threshold, else 0.5)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--doubtful-to-writer", f->doubtful_to_writer, "Give the writer doubtful attributes too (default: left out of its facts)");
  cmd->add_option("--attributes", f->attributes_file, "Attribute templates (JSON) to read from the catalog");
  cmd->add_option("--article-types", f->article_types, "Only these articleType values (e.g. Shirts,Tshirts)")
      ->delimiter(',');
  cmd->add_option("--ids", f->ids, "Only these product ids")->delimiter(',');
  cmd->add_option("--limit", f->limit, "At most this many products (after filtering)");
  cmd->add_option("--output,-o", f->output, "JSONL output (appended; ids already there are skipped)");
  cmd->add_option("--csv", f->csv, "Also write a CSV of all descriptions");
  cmd->add_option("--concurrency", f->concurrency, "Writer calls in flight");
  cmd->add_option("--writer", f->writer.kind, "offline (default), bedrock or openai");
  cmd->add_option("--writer-model", f->writer.model, "LLM model id (bedrock default " +
                                                         std::string(kDefaultBedrockModel) + ", openai default " +
                                                         kDefaultOpenAIModel + ")");
  cmd->add_option("--region", f->writer.region, "AWS region for bedrock (else AWS_REGION, AWS_DEFAULT_REGION)");
  cmd->add_option("--endpoint-url", f->writer.endpoint_url,
                  "Bedrock endpoint (else AWS_ENDPOINT_URL_BEDROCK_RUNTIME, AWS_ENDPOINT_URL)");
  cmd->add_option("--base-url", f->writer.base_url, "OpenAI-compatible base URL (…/v1)");
  cmd->add_option("--api-key-env", f->writer.api_key_env, "Environment variable holding the OpenAI-compatible key");
  cmd->add_option("--system-prompt", f->writer.system_prompt, "System prompt");
  cmd->add_option("--system-prompt-file", f->system_prompt_file, "Read the system prompt from a file");
  cmd->add_option("--user-template", f->writer.user_template, "User prompt; {attributes} is replaced");
  cmd->add_option("--max-tokens", f->writer.max_tokens, "Max tokens of a description");
  cmd->add_option("--temperature", f->writer.temperature, "Sampling temperature");
  cmd->add_option("--timeout", f->timeout_s, "Seconds per request (and without data) before giving up");
  cmd->add_option("--connect-timeout", f->connect_timeout_s, "Seconds to connect");
  cmd->add_option("--retries", f->retries, "Retries on throttling, 5xx and network errors");
  cmd->add_flag("--quiet,-q", f->quiet, "No progress bar");
  cmd->callback([f] { run_describe(*f); });
}

}  // namespace tailor::cli

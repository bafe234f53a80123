#include "cli/flags.h"

namespace tailor::cli {

void add_distributed_flags(CLI::App* cmd, DistributedOptions& o) {
  cmd->add_option("--nproc", o.nproc,
                  "Data-parallel on this host: start N ranks of tailor (else the torchrun variables RANK, "
                  "WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK say who this process is)");
  cmd->add_option("--dist-timeout", o.timeout_s,
                  "Seconds to wait for the other ranks at rendezvous and at each collective (default 300)");
}

void add_writer_flags(CLI::App* cmd, WriterConfig& w, const std::string& kinds) {
  cmd->add_option("--writer", w.kind, "Description writer: " + kinds)->capture_default_str();
  cmd->add_option("--writer-model", w.model, "LLM model id (bedrock default " + std::string(kDefaultBedrockModel) +
                                                 ", openai default " + kDefaultOpenAIModel + ")");
  cmd->add_option("--bedrock-api", w.bedrock_api,
                  "converse (Bedrock's Converse API: any chat model) or invoke (InvokeModel with Anthropic's body)")
      ->check(CLI::IsMember({"converse", "invoke"}))
      ->capture_default_str();
  cmd->add_option("--region", w.region, "AWS region for bedrock (else AWS_REGION, AWS_DEFAULT_REGION)");
  cmd->add_option("--endpoint-url", w.endpoint_url,
                  "Bedrock endpoint (else AWS_ENDPOINT_URL_BEDROCK_RUNTIME, AWS_ENDPOINT_URL)");
  cmd->add_option("--base-url", w.base_url, "OpenAI-compatible base URL (…/v1)");
  cmd->add_option("--api-key-env", w.api_key_env, "Environment variable holding the OpenAI-compatible key");
}

void add_catalog_flags(CLI::App* cmd, CatalogFlags& c, bool required, const std::string& s3_prefix) {
  auto* cat = cmd->add_option("--catalog", c.catalog,
                              "Catalog: a directory (Kaggle layout, imagefolder, vqa_*.csv), a .csv/.tsv/.jsonl product table, or its http(s):// or s3:// URL");
  if (required) cat->required();
  cmd->add_option("--format", c.format, "Catalog format: kaggle, csv, tsv, jsonl, imagefolder, vqa (default: recognised)");
  cmd->add_option("--catalog-spec", c.spec, "Catalog spec file (JSON): format and column mapping; flags win");
  cmd->add_option("--id-column", c.id_column, "Table column of the product id (default: id)");
  cmd->add_option("--image-column", c.image_columns,
                  "Table column(s) of the photo, in order of preference (default: image, image_url or file_name)")
      ->delimiter(',');
  cmd->add_option("--type-column", c.type_column, "Table column of the article type (default: articleType)");
  cmd->add_option("--column", c.columns, "ATTRIBUTE=COLUMN: the table column of an attribute (repeatable)");
  cmd->add_option("--download-cache", c.download_cache,
                  "Cache of downloaded photos and tables (default: $XDG_CACHE_HOME/tailor/downloads)");
  cmd->add_option("--download-concurrency", c.download_concurrency, "Downloads in flight")->capture_default_str();
  cmd->add_option("--download-retries", c.download_retries, "Retries of a download on 429, 5xx, network errors")
      ->capture_default_str();
  cmd->add_option("--download-timeout", c.download_timeout_s, "Seconds per download")->capture_default_str();
  cmd->add_option("--max-image-mb", c.max_image_mb, "Largest photo downloaded, in MiB")->capture_default_str();
  cmd->add_option("--" + s3_prefix + "region", c.region, "S3 region (else AWS_REGION, AWS_DEFAULT_REGION, the profile's)");
  cmd->add_option("--" + s3_prefix + "endpoint-url", c.endpoint_url,
                  "S3-compatible endpoint (else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS's)");
  cmd->add_flag("--s3-path-style", c.s3_path_style, "S3 path-style URLs (endpoint/bucket/key) instead of bucket.endpoint/key (catalog, and describe --batch-s3)");
}

}  // namespace tailor::cli

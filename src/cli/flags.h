// Flag groups more than one command takes, defined once.
#pragma once
#include <CLI/CLI.hpp>

#include "app/catalog_flags.h"
#include "app/launch.h"
#include "write/writer.h"

namespace tailor::cli {

// --nproc, --dist-timeout (tailor train, tailor eval).
void add_distributed_flags(CLI::App* cmd, DistributedOptions& o);

// --writer, --writer-model, --region, --endpoint-url, --base-url, --api-key-env (tailor describe,
// tailor serve). `kinds` is the --writer help ("offline (default), bedrock or openai", ...).
void add_writer_flags(CLI::App* cmd, WriterConfig& w, const std::string& kinds);

// --catalog (required when `required`), --format, --catalog-spec, --id-column, --image-column,
// --type-column, --column, and the download flags (tailor prepare, tailor describe). S3's region and
// endpoint are --region/--endpoint-url, or with `s3_prefix` (describe, whose writer has those)
// --<prefix>region/--<prefix>endpoint-url.
void add_catalog_flags(CLI::App* cmd, CatalogFlags& c, bool required, const std::string& s3_prefix = "");

}  // namespace tailor::cli

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
// --type-column, --column (tailor prepare, tailor describe).
void add_catalog_flags(CLI::App* cmd, CatalogFlags& c, bool required);

}  // namespace tailor::cli

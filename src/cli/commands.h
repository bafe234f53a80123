// Each `tailor <verb>` lives in its own cmd_<verb>.cpp: it adds a CLI11 subcommand whose callback
// parses nothing more and makes one library call.
#pragma once
#include <CLI/CLI.hpp>

namespace tailor::cli {

void add_prepare(CLI::App& app);
void add_synth(CLI::App& app);
void add_demo(CLI::App& app);
void add_init(CLI::App& app);
void add_ask(CLI::App& app);
void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_serve(CLI::App& app);
void add_describe(CLI::App& app);
void add_review(CLI::App& app);
void add_package(CLI::App& app);
void add_quantize(CLI::App& app);

// `tailor train` with no arguments where a SageMaker training job's configuration is
// (app/training_job.h): its hyperparameters and channels become train's flags, parsed by the same
// subcommand. Throws as app.parse does (main writes the reason to the job's output/failure too).
void run_training_job(CLI::App& app);

}  // namespace tailor::cli

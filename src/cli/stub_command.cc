// Temporary: verbs whose components are still being written.
#include "cli/commands.h"
namespace sibyl {
void AddGenerateCommand(CLI::App& app, const GlobalOptions&) { app.add_subcommand("generate", "simulate a product's events (not yet built)"); }
void AddIngestCommand(CLI::App& app, const GlobalOptions&) { app.add_subcommand("ingest", "load events (not yet built)"); }
void AddStatsCommand(CLI::App& app, const GlobalOptions&) { app.add_subcommand("stats", "summarise the store (not yet built)"); }
}  // namespace sibyl

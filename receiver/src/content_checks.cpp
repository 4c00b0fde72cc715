#include "content_checks.hpp"

#include <algorithm>
#include <ctime>

namespace transfer::receiver {

Result<std::unique_ptr<ContentChecks>> ContentChecks::create(const ReceiverConfig& config,
                                                             Logger logger) {
  init_xml_library();
  std::shared_ptr<SchemaFile> schema;
  if (!config.xml_schema.empty()) {
    auto loaded = SchemaFile::load(config.xml_schema);
    if (!loaded) return make_error(ErrorCode::kInvalidArgument, loaded.error().message);
    schema = std::move(*loaded);
  }
  std::optional<ClamdAddress> clamd;
  if (!config.clamd_address.empty()) {
    auto address = parse_clamd_address(config.clamd_address);
    if (!address) return address.error();
    clamd = std::move(*address);
  }
  return std::unique_ptr<ContentChecks>(
      new ContentChecks(config, std::move(logger), std::move(schema), std::move(clamd)));
}

ContentChecks::ContentChecks(const ReceiverConfig& config, Logger logger,
                             std::shared_ptr<SchemaFile> schema, std::optional<ClamdAddress> clamd)
    : xml_(config.xml_check == "wellformed"),
      logger_(std::move(logger)),
      schema_(std::move(schema)),
      clamd_(std::move(clamd)) {
  limits_.max_depth = config.xml_max_depth;
  limits_.max_attributes = config.xml_max_attributes;
  limits_.max_construct_bytes = config.xml_max_construct;
  limits_.max_namespaces = config.xml_max_namespaces;
  limits_.max_names = config.xml_max_names;
  timeouts_.connect_s = std::min(5.0, config.clamd_timeout_s);
  timeouts_.io_s = config.clamd_timeout_s;
  if (!config.scan_quarantine_dir.empty()) quarantine_.emplace(config.scan_quarantine_dir);
}

CheckPipeline ContentChecks::make(uint64_t expected_bytes) const {
  CheckPipeline pipeline;
  if (clamd_) pipeline.add(std::make_unique<VirusScanCheck>(*clamd_, timeouts_, observer_));
  if (xml_) {
    std::unique_ptr<PlaintextCheck> xml =
        std::make_unique<XmlCheck>(limits_, schema_ ? schema_->current() : nullptr);
    pipeline.add(expected_bytes >= kCheckBesideBytes ? check_beside(std::move(xml)) : std::move(xml));
  }
  return pipeline;
}

void ContentChecks::refresh() {
  if (!schema_) return;
  const bool had_error = schema_->error().has_value();
  auto changed = schema_->refresh();
  if (!changed) {
    if (!had_error) {
      logger_->error("XML_SCHEMA no longer loads, keeping the schema loaded before: {}",
                     changed.error().message);
    }
    return;
  }
  if (*changed) logger_->info("XML schema reloaded path={}", log_value(schema_->path()));
}

void ContentChecks::keep_refused(const std::string& temp_path, int fd, const std::string& name,
                                 const CheckVerdict& verdict) const {
  if (!quarantine_ || verdict.check != "virus_scan") return;
  const std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  auto kept = quarantine_->keep(temp_path, fd, name, verdict, std::string("time: ") + when + "\n");
  if (!kept) {
    logger_->error(
        "could not keep the upload the virus scan refused name={} in SCAN_QUARANTINE_DIR: {}",
        log_value(name), kept.error().message);
    return;
  }
  logger_->warn("upload kept for forensics name={} signature={} path={}", log_value(name),
                log_value(verdict.signature), log_value(*kept));
}

void ContentChecks::add_readiness(Readiness& r) {
  if (schema_) {
    refresh();
    const auto error = schema_->error();
    r.add("xml_schema", ok_status(),
          "schema loaded from " + schema_->path() +
              (error ? " (a newer version of the file does not load, the loaded one is in force: " +
                           error->message + ")"
                     : ""));
  }
  if (clamd_) {
    ClamdTimeouts quick;
    quick.connect_s = 1;
    quick.io_s = 1;
    auto pong = clamd_ping(*clamd_, quick);
    auto version = pong ? clamd_version(*clamd_, quick) : Result<std::string>(pong.error());
    if (!pong) {
      r.add("clamd",
            make_error(ErrorCode::kBusy, "clamd at " + clamd_->text + " does not answer zPING: " +
                                             pong.error().message + " (uploads get 503)"),
            "");
    } else {
      r.add("clamd", ok_status(),
            clamd_->text + " answers: " + (version ? *version : std::string("PONG")));
    }
  }
}

std::string ContentChecks::describe() const {
  std::string s = std::string("xml_check=") + (xml_ ? "wellformed" : "off");
  if (schema_) s += " xml_schema=" + log_value(schema_->path());
  if (clamd_) s += " clamd=" + log_value(clamd_->text);
  if (quarantine_) s += " scan_quarantine_dir=" + log_value(quarantine_->dir());
  return s;
}

}  // namespace transfer::receiver

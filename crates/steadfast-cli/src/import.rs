//! `steadfast import grpc-service-config FILE`: a gRPC service config as a policy document.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use steadfast::policy::{Format, PolicyDocument, read_to_string};

/// What to import.
#[derive(Debug, Subcommand)]
pub(crate) enum Source {
    /// A gRPC service config (JSON, as grpc-go and grpc-java read it): each methodConfig's
    /// retryPolicy, hedgingPolicy and timeout, and retryThrottling
    ///
    /// Prints the policy document on stdout; fields with no counterpart are listed on
    /// stderr. Exits 1 when the config has a problem (each with its line and column).
    GrpcServiceConfig {
        /// The service config.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The document's format.
        #[arg(long = "to", value_enum, default_value_t = To::Toml)]
        to: To,
    },
}

/// A policy document's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum To {
    Toml,
    Yaml,
    Json,
}

pub(crate) fn run(source: &Source) -> anyhow::Result<ExitCode> {
    let Source::GrpcServiceConfig { file, to } = source;
    grpc_service_config(file, *to)
}

fn grpc_service_config(file: &Path, to: To) -> anyhow::Result<ExitCode> {
    let origin = file.display().to_string();
    let text = match read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{origin}: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let imported = match PolicyDocument::from_grpc_service_config(&text, &origin) {
        Ok(imported) => imported,
        Err(problems) => {
            eprintln!("{problems}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for skipped in &imported.skipped {
        eprintln!("{skipped}");
    }
    let format = match to {
        To::Toml => Format::Toml,
        To::Yaml => Format::Yaml,
        To::Json => Format::Json,
    };
    let text = imported
        .document
        .to_text(format)
        .map_err(|e| anyhow::anyhow!("writing the document: {e}"))?;
    crate::emit(&text);
    Ok(ExitCode::SUCCESS)
}

//! `steadfast check FILE...`

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use steadfast::chain::{Policy, Registry};
use steadfast::policy::{Format, PolicyDocument};

use crate::Output;

/// Stands in for an application's strategy: only its name matters to a check.
#[derive(Debug)]
struct Named;
impl Policy for Named {}

/// Stands in for an application's classifier: only its name matters to a check.
#[derive(Debug)]
struct NamedClassifier;
impl steadfast::classify::ReadResult for NamedClassifier {
    fn read(
        &self,
        _: Result<&dyn std::any::Any, &dyn std::any::Any>,
    ) -> Option<steadfast::Outcome> {
        None
    }
}

#[derive(Serialize)]
struct FileReport {
    file: String,
    ok: bool,
    tables: usize,
    errors: Vec<ErrorReport>,
}

#[derive(Serialize)]
struct ErrorReport {
    line: Option<u32>,
    column: Option<u32>,
    path: String,
    message: String,
}

pub(crate) fn run(
    files: &[PathBuf],
    strategies: &[String],
    classifiers: &[String],
    format: Output,
) -> anyhow::Result<ExitCode> {
    let registry = strategies
        .iter()
        .fold(Registry::new(), |r, name| r.register(name.clone(), Named));
    let registry = classifiers.iter().fold(registry, |r, name| {
        r.classifier(name.clone(), NamedClassifier)
    });
    let mut reports = Vec::new();
    for path in files {
        let origin = path.display().to_string();
        let parsed = match steadfast::policy::read_to_string(path) {
            Err(e) => Err(vec![ErrorReport {
                line: None,
                column: None,
                path: String::new(),
                message: format!("cannot read: {e}"),
            }]),
            Ok(text) => {
                let fmt = Format::from_path(path).unwrap_or(Format::Toml);
                let doc = if strategies.is_empty() && classifiers.is_empty() {
                    PolicyDocument::parse(&text, fmt, &origin)
                } else {
                    PolicyDocument::parse_with(&text, fmt, &origin, &registry)
                };
                doc.map_err(|e| {
                    e.diagnostics()
                        .iter()
                        .map(|d| ErrorReport {
                            line: d.line(),
                            column: d.column(),
                            path: d.path().to_owned(),
                            message: d.message().to_owned(),
                        })
                        .collect()
                })
            }
        };
        reports.push(match parsed {
            Ok(doc) => FileReport {
                file: origin,
                ok: true,
                tables: doc.policies.len() + usize::from(doc.defaults.is_some()),
                errors: Vec::new(),
            },
            Err(errors) => FileReport {
                file: origin,
                ok: false,
                tables: 0,
                errors,
            },
        });
    }
    let ok = reports.iter().all(|r| r.ok);
    match format {
        Output::Json => crate::emit(&(serde_json::to_string_pretty(&reports)? + "\n")),
        Output::Text => {
            for r in &reports {
                if r.ok {
                    println!(
                        "{}: ok ({} table{})",
                        r.file,
                        r.tables,
                        if r.tables == 1 { "" } else { "s" }
                    );
                    continue;
                }
                for e in &r.errors {
                    let place = match (e.line, e.column) {
                        (Some(l), Some(c)) => format!("{}:{l}:{c}", r.file),
                        _ => r.file.clone(),
                    };
                    let path = if e.path.is_empty() {
                        String::new()
                    } else {
                        format!("{}: ", e.path)
                    };
                    println!("{place}: {path}{}", e.message);
                }
                let n = r.errors.len();
                println!("{}: {n} problem{}", r.file, if n == 1 { "" } else { "s" });
            }
            if !strategies.is_empty() || reports.iter().all(|r| !r.ok) {
                // Nothing more to say.
            } else if reports.iter().any(|r| r.ok) {
                println!(
                    "(custom strategy names in `chain` were not checked: pass --strategy NAME for each one the application registers)"
                );
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

//! The verifier's command line, shared by `courtrec verify` and `courtrec-verify`.

use crate::verify::{self, Problem};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// A hearing folder (DATA/hearings/<id>), an export bundle's folder, a hearing
    /// downloaded from the archive's bucket, DATA/device-log or DATA/audit.
    pub path: PathBuf,
    /// A trusted verifier key (as `courtrec key show` prints it), or a file holding
    /// one. Repeatable.
    #[arg(long)]
    pub key: Vec<String>,
    /// A court's list of trusted verifier keys, one per line. Repeatable.
    #[arg(long)]
    pub ca: Vec<PathBuf>,
    /// Certificate (PEM) of a trusted time-stamping authority: timestamp tokens are
    /// then checked with `openssl ts -verify`. Repeatable.
    #[arg(long)]
    pub tsa_ca: Vec<PathBuf>,
    /// The device log to check a hearing against (default: the one beside it, if any).
    #[arg(long)]
    pub device_log: Option<PathBuf>,
    /// Prints the report as JSON (and no progress).
    #[arg(long)]
    pub json: bool,
}

/// Runs a verification and prints its report; the exit code is the report's.
pub fn verify(a: &VerifyArgs) -> ExitCode {
    run(a, |trust, progress| {
        verify::verify_with(
            &a.path,
            trust,
            &verify::Options {
                device_log: a.device_log.clone(),
                progress,
                remote: None,
            },
        )
    })
}

/// Loads the trust `a` names, runs `check` with a progress bar, prints the report
/// (text or JSON); the exit code is the report's (15 when the trust cannot be read).
pub fn run(
    a: &VerifyArgs,
    check: impl FnOnce(&verify::Trust, &dyn crate::progress::Progress) -> verify::Report,
) -> ExitCode {
    let trust = match verify::Trust::load(&a.key, &a.ca, &a.tsa_ca) {
        Ok(t) => t,
        Err(e) => {
            println!("RESULT: {}: {e}", Problem::Unusable.label());
            return ExitCode::from(Problem::Unusable.exit_code() as u8);
        }
    };
    let progress = crate::progress::TermProgress::new("verifying", a.json);
    let report = check(&trust, &progress);
    progress.finish();
    if a.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("verify: {e}"),
        }
    } else {
        print!("{}", report.to_text());
    }
    ExitCode::from(report.exit_code as u8)
}

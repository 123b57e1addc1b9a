//! `courtrec-verify`: the offline verifier alone, built from the archive crate with
//! nothing but Rust (no GStreamer, no HTTP server): what a court's expert runs on a
//! laptop. The same checks and exit codes as `courtrec verify` (docs/verify.md).

use clap::Parser;
use std::process::ExitCode;

/// Verifies a hearing folder, an export bundle, a device log or an audit log offline.
/// Exit codes: 0 complete and unmodified, 10 modified, 11 missing or reordered,
/// 12 unexplained gap, 13 not sealed, 14 bad signature or untrusted signer,
/// 15 unusable input, 16 unexpected content.
#[derive(Parser)]
#[command(name = "courtrec-verify", version)]
struct Args {
    #[command(flatten)]
    verify: courtrec_archive::cli::VerifyArgs,
}

fn main() -> ExitCode {
    let a = Args::parse();
    courtrec_archive::cli::verify(&a.verify)
}

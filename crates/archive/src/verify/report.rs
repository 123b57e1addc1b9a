//! What the verifier found: findings with a kind each, the exit code of the most
//! serious one, and the report people read (text) or tools read (`--json`).

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What kind of problem a finding is. The exit code is that of the most serious one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// Listed in order of precedence: the first one found decides the exit code.
    Unusable,
    BadSignature,
    Modified,
    MissingOrReordered,
    /// Content nobody signed: files not in the manifest, a folder named for another
    /// hearing, lines after the seal that no signature covers.
    Unexpected,
    UnexplainedGap,
    Unsealed,
}

impl Problem {
    /// The process exit code for this problem (0 is "complete and unmodified").
    pub fn exit_code(self) -> i32 {
        match self {
            Problem::Modified => 10,
            Problem::MissingOrReordered => 11,
            Problem::UnexplainedGap => 12,
            Problem::Unsealed => 13,
            Problem::BadSignature => 14,
            Problem::Unusable => 15,
            Problem::Unexpected => 16,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Problem::Modified => "MODIFIED",
            Problem::MissingOrReordered => "MISSING OR REORDERED",
            Problem::UnexplainedGap => "UNEXPLAINED GAP",
            Problem::Unsealed => "NOT SEALED",
            Problem::BadSignature => "BAD SIGNATURE",
            Problem::Unusable => "UNUSABLE INPUT",
            Problem::Unexpected => "UNEXPECTED CONTENT",
        }
    }

    /// The word the daemon's integrity badge uses.
    pub fn status(self) -> &'static str {
        match self {
            Problem::Unsealed => "unsealed",
            Problem::Modified => "modified",
            Problem::MissingOrReordered => "missing",
            Problem::UnexplainedGap => "gap",
            Problem::BadSignature => "bad_signature",
            Problem::Unusable => "unusable",
            Problem::Unexpected => "unexpected",
        }
    }
}

/// One thing the verifier found: a problem, or a note (explained gaps, faults,
/// partial segments) that a reader of the report should know.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    /// The file concerned, relative to the verified folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub message: String,
}

/// What one track holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TrackSummary {
    pub segments: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub bytes: u64,
    pub media_duration_ns: u64,
}

/// Who signed, as far as the verifier could tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignerTrust {
    /// No `--key`/`--ca`: checked against the key the folder carries only.
    #[default]
    NotChecked,
    /// Every checkpoint verified with a trusted key bound to the recording device.
    Trusted,
    /// Trusted keys were given, and some checkpoint did not verify with one.
    Untrusted,
}

/// The verifier's report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub path: String,
    /// "hearing", "bundle", "device-log" or "audit-log".
    pub kind: String,
    pub hearing_id: String,
    pub case_number: String,
    pub device_id: String,
    /// Fingerprint of the key that signed the checkpoints.
    pub signer_fingerprint: Option<String>,
    /// Whether the signer was checked against a trusted key (`--key`/`--ca`).
    pub signer_trusted: bool,
    pub signer: SignerTrust,
    pub checkpoints: usize,
    /// Manifest lines covered by a valid signature.
    pub signed_lines: u64,
    /// Manifest lines present (in a bundle: lines included).
    pub manifest_lines: u64,
    /// Lines of the whole manifest (the final checkpoint's tree size).
    pub tree_size: u64,
    pub sealed: bool,
    pub segments_checked: u64,
    pub bytes_hashed: u64,
    pub tracks: BTreeMap<String, TrackSummary>,
    /// Trusted timestamps found: (checkpoint tree size, TSA time).
    pub timestamps: Vec<(u64, String)>,
    /// TSA certificates to check tokens against (from `Trust`).
    #[serde(skip)]
    pub tsa_ca: Vec<PathBuf>,
    /// For a clip: the media range it was cut from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clip: Option<(i64, i64)>,
    /// Whether a device log was checked against the hearing.
    pub device_log_checked: bool,
    pub findings: Vec<Finding>,
    /// The one-line verdict.
    pub result: String,
    pub exit_code: i32,
}

impl Report {
    pub fn problem(&mut self, p: Problem, file: Option<&str>, message: impl Into<String>) {
        self.findings.push(Finding {
            problem: Some(p),
            file: file.map(str::to_string),
            message: message.into(),
        });
    }

    pub fn note(&mut self, file: Option<&str>, message: impl Into<String>) {
        self.findings.push(Finding {
            problem: None,
            file: file.map(str::to_string),
            message: message.into(),
        });
    }

    /// The most serious problem found, if any.
    pub fn worst(&self) -> Option<Problem> {
        self.findings.iter().filter_map(|f| f.problem).min()
    }

    pub fn finish(&mut self) {
        self.signer_trusted = self.signer == SignerTrust::Trusted;
        let what = if self.kind == "bundle" && self.clip.is_some() {
            let segs: Vec<String> = self
                .tracks
                .iter()
                .filter(|(_, t)| t.segments > 0)
                .map(|(n, t)| format!("{n} {}..{}", t.first_seq, t.last_seq))
                .collect();
            format!(
                "clip of hearing {} (segments {})",
                self.hearing_id,
                segs.join(", ")
            )
        } else if self.kind == "device-log" || self.kind == "audit-log" {
            format!("{} of device {}", self.kind, self.device_id)
        } else {
            format!("hearing {}", self.hearing_id)
        };
        match self.worst() {
            None => {
                self.exit_code = 0;
                self.result = format!(
                    "VERIFIED: {what}, all present and unmodified{}",
                    match self.signer {
                        SignerTrust::Trusted => ", signed by a trusted key",
                        _ =>
                            "; the signer was NOT checked against a trusted key (use --key or --ca)",
                    }
                );
            }
            Some(p) => {
                self.exit_code = p.exit_code();
                let n = self.findings.iter().filter(|f| f.problem.is_some()).count();
                self.result = format!("{}: {what}, {n} problem(s) found", p.label());
            }
        }
    }

    /// The human-readable report, ending with the RESULT line.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "courtrec verify {}", self.path);
        let _ = writeln!(
            s,
            "{}: {} (case {}), recorded by device {}",
            self.kind, self.hearing_id, self.case_number, self.device_id
        );
        let _ = writeln!(
            s,
            "signer: {} ({})",
            self.signer_fingerprint.as_deref().unwrap_or("unknown"),
            match self.signer {
                SignerTrust::Trusted => "a trusted key of this device",
                SignerTrust::Untrusted => "NOT a trusted key of this device",
                SignerTrust::NotChecked => "not checked against a trusted key",
            }
        );
        let _ = writeln!(
            s,
            "checkpoints: {}, covering {} of {} manifest lines; sealed: {}{}",
            self.checkpoints,
            self.signed_lines,
            self.tree_size.max(self.manifest_lines),
            if self.sealed { "yes" } else { "no" },
            if self.device_log_checked {
                "; checked against the device log"
            } else {
                ""
            }
        );
        if !self.timestamps.is_empty() {
            let ts: Vec<String> = self
                .timestamps
                .iter()
                .map(|(n, t)| format!("{t} (checkpoint {n})"))
                .collect();
            let _ = writeln!(s, "trusted timestamps: {}", ts.join(", "));
        }
        for (name, t) in &self.tracks {
            let _ = writeln!(
                s,
                "track {name}: {} segment(s){}, {} bytes, {:.1} s",
                t.segments,
                if t.segments > 0 {
                    format!(" {}..{}", t.first_seq, t.last_seq)
                } else {
                    String::new()
                },
                t.bytes,
                t.media_duration_ns as f64 / 1e9
            );
        }
        let _ = writeln!(
            s,
            "hashed {} segment(s), {} bytes",
            self.segments_checked, self.bytes_hashed
        );
        for f in &self.findings {
            let tag = f.problem.map_or("note", |p| p.label());
            match &f.file {
                Some(file) => {
                    let _ = writeln!(s, "[{tag}] {file}: {}", f.message);
                }
                None => {
                    let _ = writeln!(s, "[{tag}] {}", f.message);
                }
            }
        }
        let _ = writeln!(s, "RESULT: {}", self.result);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_precedence_is_by_severity() {
        let all = [
            Problem::Unusable,
            Problem::BadSignature,
            Problem::Modified,
            Problem::MissingOrReordered,
            Problem::Unexpected,
            Problem::UnexplainedGap,
            Problem::Unsealed,
        ];
        let codes: std::collections::BTreeSet<i32> = all.iter().map(|p| p.exit_code()).collect();
        assert_eq!(codes.len(), all.len());
        assert!(!codes.contains(&0) && !codes.contains(&1) && !codes.contains(&2));
        let mut r = Report::default();
        r.problem(Problem::Unsealed, None, "x");
        r.problem(Problem::Unexpected, None, "z");
        assert_eq!(r.worst(), Some(Problem::Unexpected));
        r.problem(Problem::Modified, None, "y");
        assert_eq!(r.worst(), Some(Problem::Modified));
    }

    #[test]
    fn an_untrusted_signer_is_never_called_trusted() {
        let mut r = Report {
            signer: SignerTrust::Untrusted,
            ..Report::default()
        };
        r.problem(Problem::BadSignature, None, "x");
        r.finish();
        let t = r.to_text();
        assert!(t.contains("NOT a trusted key"), "{t}");
        assert!(!t.contains("(a trusted key"), "{t}");
    }
}

//! The thin command-line client: `courtrec hearing ...` calls the daemon's HTTP API,
//! exactly as the console does; and `courtrec check` for the data folder.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Args)]
pub struct HearingArgs {
    /// The daemon's address.
    #[arg(long, env = "COURTREC_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    #[arg(long, env = "COURTREC_USER", default_value = "clerk")]
    pub user: String,
    #[arg(long, env = "COURTREC_PASSWORD")]
    pub password: Option<String>,
    /// Print the whole JSON answer instead of a summary.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: HearingCmd,
}

#[derive(Subcommand)]
pub enum HearingCmd {
    /// Schedules a hearing; prints its id.
    Create {
        #[arg(long)]
        case_number: String,
        #[arg(long)]
        title: String,
        /// public or non_public
        #[arg(long, default_value = "public")]
        visibility: String,
        /// RFC 3339 time
        #[arg(long)]
        scheduled_start: Option<String>,
    },
    /// Opens the hearing: recording starts.
    Open {
        id: String,
    },
    /// Interrupts recording with a reason: recess, non_public_evidence or mediation.
    Recess {
        id: String,
        #[arg(long, default_value = "recess")]
        reason: String,
        #[arg(long)]
        note: Option<String>,
    },
    Resume {
        id: String,
    },
    Close {
        id: String,
    },
    /// Adds a timed note.
    Mark {
        id: String,
        text: String,
    },
    /// Lists hearings, optionally by (part of) a case number.
    List {
        #[arg(long)]
        case_number: Option<String>,
    },
    /// Shows one hearing with its events.
    Show {
        id: String,
    },
}

fn call(
    client: &reqwest::blocking::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .map_err(|e| format!("cannot reach courtrec at {url}: {e}"))?;
    let status = resp.status();
    let v: Value = resp.json().unwrap_or(Value::Null);
    if status.is_success() {
        Ok(v)
    } else {
        Err(format!(
            "{status}: {}",
            v.get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
        ))
    }
}

pub fn run(a: HearingArgs) -> Result<(), String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let base = format!("{}/api/v1", a.server.trim_end_matches('/'));
    let password = match a.password {
        Some(p) => p,
        None => return Err("give the password with --password or COURTREC_PASSWORD".into()),
    };
    let login = call(
        &client,
        reqwest::Method::POST,
        &format!("{base}/login"),
        None,
        Some(json!({"username": a.user, "password": password})),
    )?;
    let token = login
        .get("token")
        .and_then(Value::as_str)
        .ok_or("login gave no token")?
        .to_string();
    let t = Some(token.as_str());
    use reqwest::Method as M;
    let v = match &a.cmd {
        HearingCmd::Create {
            case_number,
            title,
            visibility,
            scheduled_start,
        } => {
            let mut body =
                json!({"case_number": case_number, "title": title, "visibility": visibility});
            if let Some(s) = scheduled_start {
                body["scheduled_start"] = json!(s);
            }
            call(&client, M::POST, &format!("{base}/hearings"), t, Some(body))?
        }
        HearingCmd::Open { id } => call(
            &client,
            M::POST,
            &format!("{base}/hearings/{id}/open"),
            t,
            None,
        )?,
        HearingCmd::Recess { id, reason, note } => call(
            &client,
            M::POST,
            &format!("{base}/hearings/{id}/recess"),
            t,
            Some(json!({"reason": reason, "note": note})),
        )?,
        HearingCmd::Resume { id } => call(
            &client,
            M::POST,
            &format!("{base}/hearings/{id}/resume"),
            t,
            None,
        )?,
        HearingCmd::Close { id } => call(
            &client,
            M::POST,
            &format!("{base}/hearings/{id}/close"),
            t,
            None,
        )?,
        HearingCmd::Mark { id, text } => call(
            &client,
            M::POST,
            &format!("{base}/hearings/{id}/marks"),
            t,
            Some(json!({"text": text})),
        )?,
        HearingCmd::List { case_number } => {
            let mut url =
                reqwest::Url::parse(&format!("{base}/hearings")).map_err(|e| e.to_string())?;
            if let Some(c) = case_number {
                url.query_pairs_mut().append_pair("case_number", c);
            }
            call(&client, M::GET, url.as_str(), t, None)?
        }
        HearingCmd::Show { id } => {
            call(&client, M::GET, &format!("{base}/hearings/{id}"), t, None)?
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let line = |h: &Value| {
        format!(
            "{}\t{}\t{}\t{}",
            h["id"].as_str().unwrap_or(""),
            h["state"].as_str().unwrap_or(""),
            h["case_number"].as_str().unwrap_or(""),
            h["title"].as_str().unwrap_or("")
        )
    };
    match &a.cmd {
        HearingCmd::List { .. } => {
            for h in v["hearings"].as_array().into_iter().flatten() {
                println!("{}", line(h));
            }
        }
        HearingCmd::Show { .. } => {
            println!("{}", line(&v));
            for e in v["events"].as_array().into_iter().flatten() {
                let field = |k: &str| e[k].as_str().unwrap_or("").to_string();
                let detail: Vec<String> = [field("reason"), field("source"), field("text")]
                    .into_iter()
                    .filter(|x| !x.is_empty())
                    .collect();
                println!(
                    "  {}\t{}\t{}",
                    field("wall_time"),
                    field("kind"),
                    detail.join(" · ")
                );
            }
        }
        _ => println!("{}", line(&v)),
    }
    Ok(())
}

/// `courtrec check [--repair]` on a data folder (daemon stopped: the index is locked
/// while it runs). Hearings are checked against this box's key (`key_path`) and its
/// device log.
pub fn check(
    data_dir: &std::path::Path,
    key_path: &std::path::Path,
    repair: bool,
) -> Result<(), String> {
    let data = crate::archive::DataDir::new(data_dir);
    let index = crate::archive::index::Index::open(&data.index()).map_err(|e| e.to_string())?;
    let mut trust = crate::archive::verify::Trust::default();
    if key_path.is_file() {
        let device_id = std::fs::read_to_string(data.root.join("device-id"))
            .map_err(|e| format!("reading the device id in {}: {e}", data.root.display()))?;
        let key = crate::archive::signing::DeviceKey::load_or_create(
            key_path,
            &format!("courtrec/{}", device_id.trim()),
        )
        .map_err(|e| e.to_string())?;
        trust.keys.push(key.verifier());
    }
    let progress = crate::archive::progress::TermProgress::new("checking", false);
    let r = crate::archive::check::check(&data, &index, &trust, repair, &progress);
    progress.finish();
    let r = r.map_err(|e| e.to_string())?;
    for p in &r.problems {
        println!("PROBLEM: {p}");
    }
    for p in &r.index_problems {
        println!(
            "PROBLEM: {p}{}",
            if r.repaired { " (repaired)" } else { "" }
        );
    }
    let n = r.problems.len()
        + if r.repaired {
            0
        } else {
            r.index_problems.len()
        };
    println!(
        "checked {} hearing(s), {} segment(s): {n} problem(s){}",
        r.hearings,
        r.segments,
        if r.repaired {
            "; index rebuilt from the hearing folders"
        } else {
            ""
        }
    );
    if n == 0 {
        Ok(())
    } else if r.problems.is_empty() {
        Err(
            "the index differs from the files: `courtrec check --repair` rebuilds it from them"
                .into(),
        )
    } else {
        Err(
            "problems found in the files themselves: they stay as they are (they are evidence); see docs/verify.md"
                .into(),
        )
    }
}

/// `courtrec export`: makes a bundle from the data folder, signing the export event
/// with this box's key.
#[allow(clippy::too_many_arguments)]
pub fn export(
    cfg: &crate::config::Config,
    data_dir: &std::path::Path,
    hearing: &str,
    out: &std::path::Path,
    from: Option<&str>,
    to: Option<&str>,
    tracks: Vec<String>,
    actor: Option<String>,
) -> Result<(), String> {
    use crate::archive::{DataDir, bundle};
    if hearing.is_empty()
        || !hearing
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!("{hearing:?} is not a hearing id"));
    }
    let data = DataDir::new(data_dir);
    let dir = data.hearing(hearing);
    if !dir.manifest().is_file() {
        return Err(format!(
            "no hearing {hearing} in {} (list them with `courtrec hearing list`)",
            data.hearings().display()
        ));
    }
    let key_path = cfg.device.key_path(data_dir);
    if !key_path.is_file() {
        return Err(format!(
            "no device key at {}: exports are signed with the key that signed the hearing",
            key_path.display()
        ));
    }
    let device_id = std::fs::read_to_string(data.root.join("device-id"))
        .map_err(|e| format!("reading the device id in {}: {e}", data.root.display()))?;
    let key = std::sync::Arc::new(
        crate::archive::signing::DeviceKey::load_or_create(
            &key_path,
            &format!("courtrec/{}", device_id.trim()),
        )
        .map_err(|e| e.to_string())?,
    );
    // The device log records the export's checkpoint too; it is shared with a running
    // daemon under a lock.
    let devlog = crate::archive::devlog::DeviceLog::open(
        &data.root.join("device-log"),
        device_id.trim(),
        key.clone(),
    )
    .map_err(|e| e.to_string())?;
    let signer = crate::archive::log::Signer {
        key,
        devlog: Some(std::sync::Arc::new(devlog)),
    };
    let actor = actor.unwrap_or_else(|| {
        let user = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        format!("cli:{user}")
    });
    let req = bundle::ExportRequest {
        typed: [from.map(str::to_string), to.map(str::to_string)],
        tracks,
        actor,
        ..Default::default()
    };
    let progress = crate::archive::progress::TermProgress::new("exporting", false);
    let s = bundle::export(&dir.root, out, &req, signer, &progress);
    progress.finish();
    let s = s.map_err(|e| e.to_string())?;
    println!(
        "exported {} segment(s), {} bytes, of tracks {} from hearing {} to {}",
        s.segments,
        s.bytes,
        s.tracks.join(", "),
        s.hearing_id,
        s.out
    );
    println!("check it with: courtrec verify {}", s.out);
    Ok(())
}

/// `courtrec verify s3://<bucket>/<prefix><id>/ --config FILE`: the hearing where the
/// archive keeps it (see `store::remote`).
pub fn verify_s3(
    a: &crate::archive::cli::VerifyArgs,
    config: Option<&std::path::Path>,
) -> std::process::ExitCode {
    let url = a.path.to_string_lossy().to_string();
    crate::archive::cli::run(a, |trust, progress| {
        let unusable = |msg: String| {
            let mut r = crate::archive::verify::Report {
                path: url.clone(),
                ..Default::default()
            };
            r.problem(crate::archive::verify::Problem::Unusable, None, msg);
            r.finish();
            r
        };
        let Some(config) = config else {
            return unusable(
                "an s3:// address needs --config FILE with an [archive] section (endpoint, credentials)".into(),
            );
        };
        let mut cfg = match crate::config::archive::load_section(config) {
            Ok(c) => c,
            Err(e) => return unusable(e),
        };
        let Some((bucket, _)) = crate::store::remote::parse_url(&url) else {
            return unusable("not an s3://bucket/prefix/hearing-id/ address".into());
        };
        cfg.bucket = bucket;
        let store = match cfg
            .credentials()
            .map_err(|e| e.to_string())
            .and_then(|c| crate::store::Store::new(&cfg, &c).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => return unusable(e),
        };
        crate::store::remote::verify_s3(&url, store, trust, progress)
    })
}

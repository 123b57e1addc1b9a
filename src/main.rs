//! The `courtrec` command: the daemon (`serve`), its thin API client (`hearing ...`),
//! and offline tools (`check`, `verify`, `export`, `key`, `pipeline`, `hash-password`).

use clap::{Parser, Subcommand};
use courtrec::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "courtrec",
    version,
    about = "Records, seals and relays court hearings"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Prints the verifier key (name+id+base64) and its fingerprint.
    Show {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the courtroom daemon (the built-in demo courtroom without --config).
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8080 (overrides the config).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data folder (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Creates and runs hearings through the daemon's API.
    Hearing(courtrec::cli::HearingArgs),
    /// Compares the hearing folders with the index; --repair rebuilds the index from them.
    /// Run it with the daemon stopped.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        repair: bool,
    },
    /// Prints this box's public key (creating the key on first use) for a court's list
    /// of trusted devices.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Verifies a hearing folder or an export bundle offline: signatures, checkpoints,
    /// every segment's hash, sequence and gaps. Exit codes: 0 complete and unmodified,
    /// 10 modified, 11 missing or reordered, 12 unexplained gap, 13 not sealed,
    /// 14 bad signature or untrusted signer, 15 unusable input.
    Verify {
        /// A hearing folder (DATA/hearings/<id>) or an export bundle's folder.
        path: PathBuf,
        /// A trusted verifier key (as `courtrec key show` prints it), or a file holding
        /// one. Repeatable.
        #[arg(long)]
        key: Vec<String>,
        /// A court's list of trusted verifier keys, one per line. Repeatable.
        #[arg(long)]
        ca: Vec<PathBuf>,
        /// Certificate (PEM) of a trusted time-stamping authority: timestamp tokens
        /// are then checked with `openssl ts -verify`. Repeatable.
        #[arg(long)]
        tsa_ca: Vec<PathBuf>,
        /// Prints the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Exports a closed hearing, or a clip of it, to a bundle folder that proves itself
    /// (see `courtrec verify`). Works on the data folder directly; the export is logged
    /// in the hearing.
    Export {
        /// Hearing id.
        hearing: String,
        /// The bundle folder to create (must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
        /// Start of a clip: HH:MM:SS from the open, or an RFC 3339 date and time.
        #[arg(long)]
        from: Option<String>,
        /// End of a clip (same forms as --from).
        #[arg(long)]
        to: Option<String>,
        /// Tracks to export, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        tracks: Vec<String>,
        /// Who exports, for the hearing's log (default: the login user).
        #[arg(long = "as")]
        actor: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Watches a livestream like a browser would (WHEP) and prints, as JSON, what
    /// arrived and how late: court IT's check that the public can see a hearing.
    /// Fails if no viewer was accepted or one received no picture.
    Watch {
        /// The hearing's `whep_url` (absolute).
        url: String,
        /// How many viewers to connect at once.
        #[arg(long, default_value_t = 1)]
        viewers: usize,
        /// How long to watch.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Prints the GStreamer pipeline the config builds.
    Pipeline {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Reads a password on standard input and prints its argon2 hash for `[[user]]`.
    HashPassword,
}

fn load(config: &Option<PathBuf>) -> Result<Config, String> {
    match config {
        Some(p) => Config::load(p).map_err(|e| format!("bad config: {e}")),
        None => Ok(Config::demo()),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result: Result<(), String> = match cli.cmd {
        Cmd::Serve {
            config,
            listen,
            data_dir,
        } => load(&config).and_then(|mut cfg| {
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            if let Some(d) = data_dir {
                cfg.server.data_dir = d;
            }
            courtrec::serve::run(cfg).map_err(|e| e.to_string())
        }),
        Cmd::Hearing(args) => courtrec::cli::run(args),
        Cmd::Check {
            config,
            data_dir,
            repair,
        } => load(&config).and_then(|cfg| {
            let dir = data_dir.unwrap_or(cfg.server.data_dir);
            courtrec::cli::check(&dir, repair)
        }),
        Cmd::Key {
            cmd: KeyCmd::Show { config, data_dir },
        } => load(&config).and_then(|cfg| {
            let dir = data_dir.unwrap_or(cfg.server.data_dir.clone());
            let data = courtrec::archive::DataDir::new(&dir);
            let device_id = data.init().map_err(|e| e.to_string())?;
            let key = courtrec::archive::signing::DeviceKey::load_or_create(
                &cfg.device.key_path(&dir),
                &format!("courtrec/{device_id}"),
            )
            .map_err(|e| e.to_string())?;
            let v = key.verifier();
            println!("device:      {device_id}");
            println!("verifier:    {}", v.to_vkey());
            println!("fingerprint: {}", v.fingerprint());
            Ok(())
        }),
        Cmd::Verify {
            path,
            key,
            ca,
            tsa_ca,
            json,
        } => {
            return courtrec::cli::verify(&path, &key, &ca, &tsa_ca, json);
        }
        Cmd::Export {
            hearing,
            out,
            from,
            to,
            tracks,
            actor,
            config,
            data_dir,
        } => load(&config).and_then(|cfg| {
            let dir = data_dir.unwrap_or(cfg.server.data_dir.clone());
            courtrec::cli::export(
                &cfg,
                &dir,
                &hearing,
                &out,
                from.as_deref(),
                to.as_deref(),
                tracks,
                actor,
            )
        }),
        Cmd::Watch {
            url,
            viewers,
            seconds,
        } => tokio::runtime::Runtime::new()
            .map_err(|e| format!("starting the runtime: {e}"))
            .and_then(|rt| rt.block_on(courtrec::live::watch::watch(&url, viewers, seconds)))
            .and_then(|r| {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
                if r.viewers == 0 {
                    Err(format!("no viewer was accepted: {:?}", r.refused))
                } else if r.per_viewer.iter().any(|v| v.video_frames == 0) {
                    Err("a viewer received no picture".into())
                } else {
                    Ok(())
                }
            }),
        Cmd::Pipeline { config } => load(&config).map(|cfg| {
            println!("{}", courtrec::capture::pipeline::describe(&cfg).text());
        }),
        Cmd::HashPassword => {
            let mut pw = String::new();
            match std::io::stdin().read_line(&mut pw) {
                Ok(_) if !pw.trim_end_matches(['\n', '\r']).is_empty() => {
                    courtrec::http::auth::hash_password(pw.trim_end_matches(['\n', '\r']))
                        .map(|h| println!("{h}"))
                        .map_err(|e| e.to_string())
                }
                _ => Err("no password on standard input".into()),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("courtrec: {e}");
            ExitCode::FAILURE
        }
    }
}

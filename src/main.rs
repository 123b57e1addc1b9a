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
enum ConfigCmd {
    /// Validates a courtroom box's config without starting anything: exit 0 if valid,
    /// 2 if not, printing the file, line and key of what is wrong.
    Check {
        /// The config file, e.g. /etc/courtrec/courtrec.toml.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ArchiveCmd {
    /// Runs the court's archive server: review, search, playback, exports and verify
    /// of every courtroom's hearings from the bucket, and the fleet page. No capture.
    Serve {
        /// The archive server's config: [archive], [[user]], optionally [server],
        /// [device], [login], [exports], trusted_keys (docs/archive.md).
        #[arg(long)]
        config: PathBuf,
        /// Address to listen on (overrides the config).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data folder: its index, users, audit log, key, export log (overrides the config).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// The court's central archive (see `courtrec archive serve --help`).
    Archive {
        #[command(subcommand)]
        cmd: ArchiveCmd,
    },
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
        /// Lets the demo courtroom (users with the password "demo") listen on a
        /// non-loopback address. Never on a court's network.
        #[arg(long)]
        demo_on_network: bool,
    },
    /// Checks a config file (`courtrec config check FILE`).
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
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
    /// Verifies a hearing folder, an export bundle, a device log or an audit log
    /// offline: signatures, checkpoints, every segment's hash, sequence and gaps. Exit
    /// codes: 0 complete and unmodified, 10 modified, 11 missing or reordered,
    /// 12 unexplained gap, 13 not sealed, 14 bad signature or untrusted signer,
    /// 15 unusable input, 16 unexpected content (docs/verify.md).
    /// A hearing in the court's archive is given as s3://<bucket>/<prefix><id>/ with
    /// --config naming a config whose [archive] section says where the store is.
    Verify {
        #[command(flatten)]
        args: courtrec::archive::cli::VerifyArgs,
        /// For an s3:// address: a config file with an [archive] section.
        #[arg(long)]
        config: Option<PathBuf>,
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
    // The RTSP client's own notes on each connection (the policies it applied) are
    // below what court IT reads; its warnings stay.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,retina=warn"));
    // Under systemd (stderr is the journal): records go to the journal natively, each
    // with its priority and fields (`journalctl -u courtrec HEARING_ID=…`); should its
    // socket be missing, plain lines on stderr, which the journal stamps itself.
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|l| {
            l.with_syslog_identifier("courtrec".into())
                .with_field_prefix(None)
        });
    if let Some(journald) = journald {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        tracing_subscriber::registry()
            .with(filter)
            .with(journald)
            .init();
    } else if std::env::var_os("JOURNAL_STREAM").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .without_time()
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let cli = Cli::parse();
    let result: Result<(), String> = match cli.cmd {
        Cmd::Config {
            cmd: ConfigCmd::Check { file },
        } => {
            return match Config::load_all(&file) {
                Ok(cfg) => {
                    println!(
                        "{}: valid: courtroom '{}' ({}), {} cameras, {} microphones, {} users",
                        file.display(),
                        cfg.courtroom.name,
                        cfg.courtroom.id,
                        cfg.cameras.len(),
                        cfg.microphones.len(),
                        cfg.users.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    eprintln!("{}: {} error(s)", file.display(), errors.len());
                    ExitCode::from(2)
                }
            };
        }
        Cmd::Serve {
            config,
            listen,
            data_dir,
            demo_on_network,
        } => load(&config).and_then(|mut cfg| {
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            if let Some(d) = data_dir {
                cfg.server.data_dir = d;
            }
            let exposed = !cfg.server.listen.ip().is_loopback()
                || cfg.server.tls_listen.is_some_and(|a| !a.ip().is_loopback());
            if cfg.demo && exposed && !demo_on_network {
                return Err(format!(
                    "the demo courtroom (users with the password \"demo\") does not listen on {}: use a loopback address, a --config with your own users, or --demo-on-network if you really mean it",
                    cfg.server.listen
                ));
            }
            courtrec::serve::run(cfg).map_err(|e| e.to_string())
        }),
        Cmd::Archive {
            cmd:
                ArchiveCmd::Serve {
                    config,
                    listen,
                    data_dir,
                },
        } => courtrec::config::central::ArchiveServer::load(&config)
            .map_err(|e| format!("bad config: {e}"))
            .and_then(|mut ac| {
                if let Some(l) = listen {
                    ac.server.listen = l;
                }
                if let Some(d) = data_dir {
                    ac.server.data_dir = d;
                }
                courtrec::serve::archive_server::run(ac).map_err(|e| e.to_string())
            }),
        Cmd::Hearing(args) => courtrec::cli::run(args),
        Cmd::Check {
            config,
            data_dir,
            repair,
        } => load(&config).and_then(|cfg| {
            let dir = data_dir.unwrap_or(cfg.server.data_dir.clone());
            courtrec::cli::check(&dir, &cfg.device.key_path(&dir), repair)
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
        Cmd::Verify { args, config } => {
            if args.path.to_string_lossy().starts_with("s3://") {
                return courtrec::cli::verify_s3(&args, config.as_deref());
            }
            return courtrec::archive::cli::verify(&args);
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
            println!("{}", courtrec::capture::describe(&cfg).text());
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

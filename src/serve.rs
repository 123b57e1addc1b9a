//! `courtrec serve`: wires config → capture → recording → archive and the HTTP API,
//! recovers hearings a crash left open, and shuts down cleanly on SIGTERM.

use crate::archive::{DataDir, index::Index};
use crate::capture::{SourceStatus, pipeline::Capture};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{self, AppState};
use crate::monitor::{self, Alarms};
use crate::recording::hearings::HearingService;
use crate::recording::router::Router;
use std::sync::Arc;
use std::time::Duration;

pub mod archive_server;
mod health;
mod heartbeat;
pub mod notify;

pub fn run(cfg: Config) -> Result<()> {
    // Test hook: failures injected at named write sites (see archive::fault).
    for f in crate::archive::fault::arm_from_env() {
        tracing::warn!("TEST HOOK: injected failure armed: {f}");
    }
    // Large allocations (a password hash's 7 MiB) always come from and go back to the
    // system: glibc would otherwise raise its threshold after the first one and keep
    // the memory of a login flood for good.
    // Two malloc arenas, not glibc's default of eight per core: each of the pipeline's
    // hundred-odd threads that allocates would otherwise get an arena of its own, and
    // the memory freed in one is not reused by the others (the bench's whole job:
    // peak RSS 183 -> 175 MB; CPU unchanged, threads keep their own small caches).
    // SAFETY: mallopt only changes the allocator's tuning, before threads start.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 1 << 20);
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
    let cfg = Arc::new(cfg);
    let data = DataDir::new(cfg.server.data_dir.clone());
    let device_id = data.init()?;
    // Created on first start; it will sign this box's hearings (checkpoints).
    let key = crate::archive::signing::DeviceKey::load_or_create(
        &cfg.device.key_path(&data.root),
        &format!("courtrec/{device_id}"),
    )?;
    let fingerprint = key.verifier().fingerprint();
    let key = Arc::new(key);
    // Every checkpoint of every hearing is recorded in the device log: a later signed
    // statement that reveals a hearing cut short (see archive::devlog).
    let devlog = Arc::new(crate::archive::devlog::DeviceLog::open(
        &data.root.join("device-log"),
        &device_id,
        key.clone(),
    )?);
    let signer = crate::archive::log::Signer {
        key: key.clone(),
        devlog: Some(devlog.clone()),
    };
    let index = Index::open(&data.index())?;
    let catalog = crate::archive::catalog::Catalog::new(data.clone(), index.clone(), Some(signer));
    crate::http::auth::seed_users(&index, &cfg)?;

    let sources = Arc::new(SourceStatus::new(&cfg));
    let alarms = Arc::new(Alarms::default());
    let specs = crate::capture::track_specs(&cfg);
    let router = Arc::new(Router::new(specs.len()));
    let previews = Arc::new(crate::capture::Previews::default());
    let capture = Arc::new(Capture::start(
        &cfg,
        router.clone(),
        sources.clone(),
        previews.clone(),
    )?);
    capture.wait_running(Duration::from_secs(10))?;
    // Before resuming a hearing (or letting the encoders rest until one opens: see
    // `Router::wait_all_flowing`), let every encoder start, so the keyframe request
    // that starts recording is honoured on every track at once.
    for i in router.wait_all_flowing(Duration::from_secs(10)) {
        tracing::warn!(track = %specs[i].info.name, "no frames yet from this track; it will be recorded once it starts");
    }

    let hearings = Arc::new(HearingService::new(
        cfg.clone(),
        data.clone(),
        index.clone(),
        device_id.clone(),
        capture.clone(),
        router,
        alarms.clone(),
        catalog.clone(),
    ));
    hearings.check_signatures()?;
    for id in hearings.recover()? {
        tracing::warn!(hearing = %id, "recovered a hearing left open by an unclean stop");
        println!("courtrec: recovered hearing {id} after an unclean stop (see its recovery event)");
    }
    monitor::spawn(
        cfg.clone(),
        data.root.clone(),
        sources.clone(),
        alarms.clone(),
        hearings.clone(),
    );

    crate::timestamp::spawn(cfg.clone(), data.clone(), hearings.clone(), alarms.clone());

    // The public livestream: one encoding, fanned out to the viewers.
    let relay = {
        let capture = capture.clone();
        Arc::new(crate::live::Relay::new(
            crate::live::Limits {
                max_viewers: cfg.livestream.max_viewers,
                max_pending: cfg.livestream.max_pending,
                max_pending_per_address: cfg.livestream.max_pending_per_address,
                pending_timeout: Duration::from_secs(cfg.livestream.pending_timeout_s.max(1)),
            },
            cfg.livestream.ice_servers.clone(),
            Arc::new({
                let capture = capture.clone();
                move || capture.request_live_keyframe()
            }),
            Arc::new(move || {
                use crate::capture::CaptureControl;
                capture.running_time_ns()
            }),
        )?)
    };
    // With the livestream off the pipeline has no public branch to attach to, and the
    // config refuses `rtmp_url` and `whip_url` (so neither push is made below).
    if cfg.livestream.enabled {
        relay.start();
        capture.attach_live(relay.clone());
    }
    let egress = cfg.livestream.rtmp_url.as_deref().map(|url| {
        let e = Arc::new(crate::live::rtmp::Egress::new(url));
        capture.attach_live_es(e.clone());
        e
    });

    let whip = cfg.livestream.whip_url.as_deref().map(|url| {
        Arc::new(crate::live::whip::WhipEgress::new(
            url,
            cfg.livestream.whip_token.as_deref(),
            relay.clone(),
        ))
    });
    let audit = Arc::new(crate::archive::audit::AuditLog::open(
        &data.root.join("audit"),
        Some((key.clone(), device_id.clone())),
    )?);
    let exports = crate::archive::exports::Exports::start(
        catalog.clone(),
        Arc::new(crate::archive::exports::BoxMaker {
            catalog: catalog.clone(),
        }),
        crate::archive::exports::Limits {
            pending_per_caller: cfg.exports.pending_per_caller,
            per_caller_per_day: cfg.exports.per_caller_per_day,
            expire_hours: cfg.exports.expire_hours,
            keep_free_bytes: cfg.recording.disk_reserve_bytes.saturating_mul(2),
        },
        cfg.exports.workers,
    );
    // Replication to the court's archive: it starts whether or not the store answers
    // (the box records either way; the queue waits).
    let replication = match &cfg.archive {
        Some(a) => {
            let r = crate::replication::Replicator::start(a, data.clone(), &index, alarms.clone())?;
            let ex = exports.clone();
            r.start_retention(
                index.clone(),
                devlog.clone(),
                crate::replication::retention::Policy {
                    local_retention_days: a.local_retention_days,
                    keep_free_bytes: a
                        .keep_free_bytes
                        .unwrap_or(cfg.alarms.disk_free_min_bytes.saturating_mul(2)),
                    tsa: cfg.device.tsa_url.is_some(),
                    busy: Arc::new(move |id: &str| ex.busy(id)),
                },
            );
            heartbeat::spawn(
                cfg.clone(),
                hearings.clone(),
                alarms.clone(),
                data.clone(),
                device_id.clone(),
                r.clone(),
            );
            println!(
                "courtrec: replicating to {} at {}",
                r.location(),
                a.endpoint
            );
            Some(r)
        }
        None => None,
    };
    let audit_trust = crate::archive::verify::Trust {
        keys: vec![key.verifier()],
        ..Default::default()
    };
    check_audit(&data, &audit_trust, &alarms);
    spawn_housekeeping(
        audit.clone(),
        exports.clone(),
        index.clone(),
        (data.clone(), audit_trust, alarms.clone()),
    );
    let state = AppState {
        cfg: cfg.clone(),
        data_dir: data.root.clone(),
        index: index.clone(),
        room: Some(crate::http::Room {
            hearings: hearings.clone(),
            sources,
            previews: previews.clone(),
            relay: relay.clone(),
        }),
        central: None,
        catalog: catalog.clone(),
        exports,
        audit: audit.clone(),
        alarms,
        replication,
        login: Arc::new(crate::http::auth::LoginGuard::from_config(&cfg.login)),
        recent_audits: Default::default(),
        started: chrono::Utc::now(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("starting the runtime: {e}")))?;
    let enforcer = crate::live::enforce(
        hearings.clone(),
        capture.clone(),
        relay.clone(),
        egress,
        whip,
        state.alarms.clone(),
    );
    let settings = settings(&cfg);
    let notifier = notify::Notifier::from_env();
    let health_hearings = hearings.clone();
    let health_previews = previews.clone();
    rt.block_on(async move {
        tokio::spawn(enforcer);
        crate::http::server::serve(
            http::router(state),
            settings,
            shutdown_signal(),
            |plain, tls| {
                announce(&cfg, plain, tls, &device_id, &fingerprint, &data);
                // Capture runs and the API listens: tell systemd (Type=notify).
                if let Some(n) = notifier {
                    let lost = Duration::from_millis(cfg.alarms.source_lost_ms);
                    notify::spawn(
                        n,
                        health::BoxHealth {
                            hearings: health_hearings,
                            previews: health_previews,
                            data_dir: data.root.clone(),
                            http: plain,
                            stall_after: lost * 2 + Duration::from_secs(1),
                        },
                    );
                }
            },
        )
        .await
    })?;
    println!("courtrec: stopping; sealing open segments");
    if let Some(n) = notify::Notifier::from_env() {
        n.send("STOPPING=1\nSTATUS=stopping: sealing open segments");
    }
    hearings.shutdown();
    capture.stop();
    let flushed = index.flush();
    stop_background(rt);
    flushed
}

/// How long a stop waits for background work still on the blocking pool.
const BACKGROUND_GRACE: Duration = Duration::from_secs(3);

/// Lets the runtime go without waiting for ever on background work. What is left on
/// the blocking pool once the server has drained its requests and the hearings are
/// sealed is checking (a hearing's verification after close, queued behind exports at
/// `nice 19`), which is redone on demand; tokio would otherwise wait for it without
/// end: seen, a stop held > 30 s on a busy box while a closed hearing waited to be
/// checked.
fn stop_background(rt: tokio::runtime::Runtime) {
    rt.shutdown_timeout(BACKGROUND_GRACE);
}

/// The HTTP server's settings from `[server]`.
fn settings(cfg: &Config) -> crate::http::server::Settings {
    crate::http::server::Settings {
        listen: cfg.server.listen,
        tls: match (
            &cfg.server.tls_listen,
            &cfg.server.tls_cert,
            &cfg.server.tls_key,
        ) {
            (Some(a), Some(c), Some(k)) => Some((*a, c.clone(), k.clone())),
            _ => None,
        },
        header_timeout: Duration::from_secs(cfg.server.header_timeout_s),
        idle_timeout: Duration::from_secs(cfg.server.idle_timeout_s),
        max_connections: cfg.server.max_connections,
    }
}

/// Every 15 s: sign the audit log's head if it grew (no entry waits a minute for a
/// signature), delete expired export bundles and expired logins.
/// Checks the audit log against its signed heads (a removed, edited or reordered
/// entry, even with its chain rebuilt; a cut end): the `audit_tampered` alarm while it
/// fails.
fn check_audit(data: &DataDir, trust: &crate::archive::verify::Trust, alarms: &Alarms) {
    let r = crate::archive::verify::verify(&data.root.join("audit"), trust);
    let problems: Vec<String> = r
        .findings
        .iter()
        .filter(|f| {
            f.problem
                .is_some_and(|p| p != crate::archive::verify::Problem::Unsealed)
        })
        .map(|f| f.message.clone())
        .collect();
    if problems.is_empty() {
        alarms.clear("audit_tampered");
    } else {
        tracing::error!(
            "the audit log does not match its signed heads: {}",
            problems.join("; ")
        );
        alarms.raise(monitor::audit_tampered_alarm(&problems.join("; ")));
    }
}

fn spawn_housekeeping(
    audit: Arc<crate::archive::audit::AuditLog>,
    exports: Arc<crate::archive::exports::Exports>,
    index: Index,
    (data, audit_trust, alarms): (DataDir, crate::archive::verify::Trust, Arc<Alarms>),
) {
    let spawned = std::thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || {
            for tick in 1u64.. {
                std::thread::sleep(Duration::from_secs(15));
                if tick % 40 == 0 {
                    check_audit(&data, &audit_trust, &alarms);
                }
                audit.sign_head();
                exports.expire();
                if let Err(e) = index.purge_expired_tokens(chrono::Utc::now().timestamp()) {
                    tracing::warn!("purging expired logins: {e}");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the housekeeping thread: {e}");
    }
}

fn announce(
    cfg: &Config,
    plain: std::net::SocketAddr,
    tls: Option<std::net::SocketAddr>,
    device_id: &str,
    fingerprint: &str,
    data: &DataDir,
) {
    let addr = match tls {
        Some(t) => format!("https://{t}"),
        None => format!("http://{plain}"),
    };
    println!(
        "courtrec: courtroom '{}' ({}) listening on {addr}/",
        cfg.courtroom.name, cfg.courtroom.id
    );
    if tls.is_some() {
        println!("  http://{plain}/ redirects to HTTPS");
    }
    println!("  console:  {addr}/console  (the clerk's screen)");
    println!("  review:   {addr}/review   (judges, parties with an access code)");
    println!("  public:   {addr}/live     (announcements and livestreams, no login)");
    println!("  API:      {addr}/api/v1/  (see docs/api.md)");
    println!("  status:   {addr}/api/v1/status");
    println!("  data:     {}", data.root.display());
    println!("  device:   {device_id}  key {fingerprint}");
    if cfg.demo {
        println!("  DEMO courtroom: 4 test cameras, 4 test microphones.");
        println!(
            "  Demo users (password \"demo\"): clerk, judge, admin. Never use the demo on a real courtroom."
        );
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

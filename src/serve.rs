//! `courtrec serve`: wires config → capture → recording → archive and the HTTP API,
//! recovers hearings a crash left open, and shuts down cleanly on SIGTERM.

use crate::archive::{DataDir, index::Index};
use crate::capture::{SourceStatus, pipeline::Capture};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{self, AppState};
use crate::monitor::{self, Alarms};
use crate::recording::hearings::HearingService;
use crate::recording::recorder::Router;
use std::sync::Arc;
use std::time::Duration;

pub fn run(cfg: Config) -> Result<()> {
    let cfg = Arc::new(cfg);
    let data = DataDir::new(cfg.server.data_dir.clone());
    let device_id = data.init()?;
    // Created on first start; it will sign this box's hearings (checkpoints).
    let key = crate::archive::signing::DeviceKey::load_or_create(
        &cfg.device.key_path(&data.root),
        &format!("courtrec/{device_id}"),
    )?;
    let fingerprint = key.verifier().fingerprint();
    let index = Index::open(&data.index())?;
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
    // Before resuming a hearing, let every encoder start, so the keyframe request that
    // starts recording is honoured on every track at once.
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
        Some(Arc::new(key)),
    ));
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
            cfg.livestream.max_viewers,
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
    relay.start();
    capture.attach_live(relay.clone());
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
    let state = AppState {
        cfg: cfg.clone(),
        data_dir: data.root.clone(),
        index: index.clone(),
        hearings: hearings.clone(),
        sources,
        previews,
        audit: Arc::new(crate::archive::audit::AuditLog::open(
            &data.root.join("audit"),
        )?),
        relay: relay.clone(),
        alarms,
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
    rt.block_on(async move {
        tokio::spawn(enforcer);
        let listener = tokio::net::TcpListener::bind(cfg.server.listen)
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("cannot listen on {}: {e}", cfg.server.listen),
                )
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("listener address", e))?;
        announce(&cfg, addr, &device_id, &fingerprint, &data);
        axum::serve(
            listener,
            http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| Error::io("serving HTTP", e))
    })?;
    println!("courtrec: stopping; sealing open segments");
    hearings.shutdown();
    capture.stop();
    index.flush()?;
    Ok(())
}

fn announce(
    cfg: &Config,
    addr: std::net::SocketAddr,
    device_id: &str,
    fingerprint: &str,
    data: &DataDir,
) {
    println!(
        "courtrec: courtroom '{}' ({}) listening on http://{addr}/",
        cfg.courtroom.name, cfg.courtroom.id
    );
    println!("  console:  http://{addr}/console  (the clerk's screen)");
    println!("  review:   http://{addr}/review   (judges, parties with an access code)");
    println!("  public:   http://{addr}/live     (announcements and livestreams, no login)");
    println!("  API:      http://{addr}/api/v1/  (see docs/api.md)");
    println!("  status:   http://{addr}/api/v1/status");
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

//! `courtrec archive serve`: the court's archive server. No capture, no recording: it
//! reads the bucket ([`crate::central`]), keeps its own index, users, grants, audit log,
//! key and export log in its data folder, and serves the review pages, the API's
//! search, playback, exports and verification, and court IT's fleet page.

use crate::archive::index::Index;
use crate::archive::{DataDir, exports};
use crate::config::central::ArchiveServer;
use crate::error::{Error, ErrorKind, Result};
use crate::http::AppState;
use crate::monitor::Alarms;
use std::sync::Arc;

pub fn run(ac: ArchiveServer) -> Result<()> {
    let cfg = Arc::new(ac.to_config());
    let data = DataDir::mirrored(cfg.server.data_dir.clone());
    let device_id = data.init()?;
    let key = Arc::new(crate::archive::signing::DeviceKey::load_or_create(
        &cfg.device.key_path(&data.root),
        &format!("courtrec/{device_id}"),
    )?);
    let fingerprint = key.verifier().fingerprint();
    let index = Index::open(&data.index())?;
    crate::http::auth::seed_users(&index, &cfg)?;
    let alarms = Arc::new(Alarms::default());
    let trust = match &ac.trusted_keys {
        Some(list) => crate::archive::verify::Trust::load(&[], std::slice::from_ref(list), &[])
            .map_err(|e| Error::new(ErrorKind::Invalid, e))?,
        None => crate::archive::verify::Trust::default(),
    };
    let central = crate::central::Central::start(
        &ac.archive,
        data.clone(),
        index.clone(),
        trust,
        alarms.clone(),
    )?;
    let catalog =
        crate::archive::catalog::Catalog::archive(data.clone(), index.clone(), &ac.archive.prefix);
    let export_log = Arc::new(crate::archive::exportlog::ExportLog::open(
        &data.root.join("export-log"),
        &device_id,
        key.clone(),
    )?);
    let exports = exports::Exports::start(
        catalog.clone(),
        Arc::new(crate::central::export::ArchiveMaker {
            central: central.clone(),
            log: export_log,
        }),
        exports::Limits {
            pending_per_caller: cfg.exports.pending_per_caller,
            per_caller_per_day: cfg.exports.per_caller_per_day,
            expire_hours: cfg.exports.expire_hours,
            keep_free_bytes: cfg.alarms.disk_free_min_bytes,
        },
        cfg.exports.workers,
    );
    let audit = Arc::new(crate::archive::audit::AuditLog::open(
        &data.root.join("audit"),
        Some((key.clone(), device_id.clone())),
    )?);
    let audit_trust = crate::archive::verify::Trust {
        keys: vec![key.verifier()],
        ..Default::default()
    };
    super::check_audit(&data, &audit_trust, &alarms);
    super::spawn_housekeeping(
        audit.clone(),
        exports.clone(),
        index.clone(),
        (data.clone(), audit_trust, alarms.clone()),
    );
    let state = AppState {
        cfg: cfg.clone(),
        data_dir: data.root.clone(),
        index: index.clone(),
        room: None,
        central: Some(central),
        catalog,
        exports,
        audit,
        alarms,
        replication: None,
        login: Arc::new(crate::http::auth::LoginGuard::from_config(&cfg.login)),
        recent_audits: Default::default(),
        started: chrono::Utc::now(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("starting the runtime: {e}")))?;
    let settings = super::settings(&cfg);
    let (bucket, prefix) = (ac.archive.bucket.clone(), ac.archive.prefix.clone());
    rt.block_on(async move {
        crate::http::server::serve(
            crate::http::router(state),
            settings,
            super::shutdown_signal(),
            |plain, tls| {
                let addr = match tls {
                    Some(t) => format!("https://{t}"),
                    None => format!("http://{plain}"),
                };
                println!(
                    "courtrec: archive server '{}' listening on {addr}/",
                    cfg.courtroom.name
                );
                println!("  review:   {addr}/review   (judges, parties with an access code)");
                println!("  fleet:    {addr}/fleet    (court IT: every courtroom)");
                println!("  API:      {addr}/api/v1/  (see docs/api.md)");
                println!(
                    "  archive:  s3://{bucket}/{prefix} at {}",
                    cfg.archive.as_ref().map_or("", |a| a.endpoint.as_str())
                );
                println!("  data:     {}", data.root.display());
                println!("  server:   {device_id}  key {fingerprint}");
            },
        )
        .await
    })?;
    let flushed = index.flush();
    super::stop_background(rt);
    flushed
}

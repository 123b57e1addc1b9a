//! Exports from the court's archive: the hearing's segments are fetched from the store
//! (each hashed as it streams, and refused if it differs from its signed line), the
//! rest comes from the mirror, and the export is recorded in the archive server's own
//! signed export log (see `courtrec_archive::bundle::export_issued`).

use super::Central;
use crate::archive::bundle::{ExportRequest, ExportSummary};
use crate::archive::exportlog::ExportLog;
use crate::archive::exports::Maker;
use crate::archive::verify::Progress;
use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

pub struct ArchiveMaker {
    pub central: Arc<Central>,
    pub log: Arc<ExportLog>,
}

impl Maker for ArchiveMaker {
    fn make(
        &self,
        qid: &str,
        out: &Path,
        req: &ExportRequest,
        progress: &dyn Progress,
    ) -> Result<ExportSummary> {
        let c = &self.central;
        let (room, _) = crate::store::layout::unqualify(qid)
            .ok_or_else(|| crate::err!(NotFound, "no hearing with id '{qid}'"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| crate::err!(Internal, "starting a runtime: {e}"))?;
        let fetch = |rel: &str, dst: &Path| -> Result<u64> {
            let key = c.key_of(qid, rel).ok_or_else(|| {
                crate::err!(Invalid, "segment {rel:?} is not a file of the hearing")
            })?;
            rt.block_on(async {
                let mut r = c.store.get(&key, None).await?;
                let mut f = std::fs::File::create(dst)
                    .map_err(|e| Error::io(format!("creating {}", dst.display()), e))?;
                let mut n = 0u64;
                while let Some(chunk) = r.body.next().await {
                    let chunk = chunk.map_err(|e| {
                        crate::err!(Unavailable, "reading {key} from the store: {e}")
                    })?;
                    f.write_all(&chunk)
                        .map_err(|e| Error::io(format!("writing {}", dst.display()), e))?;
                    n += chunk.len() as u64;
                }
                Ok(n)
            })
        };
        let devlog = c.device_log_dir(&room);
        let res = crate::archive::bundle::export_issued(
            &c.data.hearing(qid).root,
            out,
            req,
            &self.log,
            devlog
                .join("manifest.jsonl")
                .is_file()
                .then_some(devlog.as_path()),
            &fetch,
            progress,
        )?;
        // What was fetched must be what the box signed: a segment altered in the
        // bucket makes the export fail rather than hand out something else.
        let report = crate::archive::verify::verify(out, &c.trust);
        if report.exit_code != 0
            && report
                .worst()
                .is_some_and(|p| p != crate::archive::verify::Problem::BadSignature)
        {
            crate::bail!(
                Conflict,
                "the archive's copy of hearing {qid} does not verify, so it is not exported: {}",
                report.result
            );
        }
        Ok(res)
    }
}

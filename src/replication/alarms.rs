//! The replication's alarms, in plain words for the clerk and court IT: raised and
//! cleared from its status every second.

use super::Status;
use super::retention::RetentionStatus;
use crate::monitor::{Alarm, Alarms, Severity};
use crate::store::Fault;
use std::time::{Duration, Instant};

/// A transient failure (store or network down) is an alarm of its own only when it
/// lasts; the lag alarm tells the rest.
const FAILING_GRACE: Duration = Duration::from_secs(120);

fn alarm(
    code: &str,
    severity: Severity,
    message: String,
    zh: String,
    action: &str,
    action_zh: &str,
) -> Alarm {
    Alarm {
        key: code.into(),
        code: code.into(),
        severity,
        source: None,
        message,
        message_zh: zh,
        action: action.into(),
        action_zh: action_zh.into(),
        since: crate::archive::records::format_wall(chrono::Utc::now()),
    }
}

fn minutes(s: f64) -> String {
    if s < 120.0 {
        format!("{} seconds", s.round() as u64)
    } else {
        format!("{} minutes", (s / 60.0).round() as u64)
    }
}

/// Keeps the alarms in step with the status.
#[derive(Default)]
pub struct Watch {
    failing_since: Option<Instant>,
}

impl Watch {
    pub fn update(&mut self, s: &Status, alarms: &Alarms) {
        if s.lag_s > s.lag_alarm_s as f64 {
            alarms.update(alarm(
                "replication_lagging",
                Severity::Warning,
                format!(
                    "Recordings are not reaching the court's archive: the oldest part waiting is {} old ({} parts, {} MB)",
                    minutes(s.lag_s),
                    s.objects_pending,
                    s.lag_bytes / 1_000_000
                ),
                format!(
                    "录像未能送达法院中心存档：最早等待的部分已等待 {}（{} 个部分）",
                    minutes(s.lag_s),
                    s.objects_pending
                ),
                "Recording continues and nothing is lost: the box keeps everything and sends it when the archive answers. Tell court IT.",
                "录制继续，不会丢失：本机保留全部内容，存档恢复后自动补传。请通知技术人员。",
            ));
        } else {
            alarms.clear("replication_lagging");
        }
        match s.fault {
            Some(f) => {
                let since = *self.failing_since.get_or_insert_with(Instant::now);
                let setting = !matches!(f, Fault::Unreachable | Fault::Server | Fault::Garbage);
                if setting || since.elapsed() > FAILING_GRACE {
                    let a = alarm(
                        "replication_failing",
                        Severity::Warning,
                        s.last_error.clone().unwrap_or_else(|| {
                            "The court's archive refuses the box's uploads".into()
                        }),
                        "无法上传到法院中心存档".into(),
                        "Recording continues and nothing is lost. Court IT: check the [archive] settings (endpoint, bucket, key) and the store.",
                        "录制继续，不会丢失。技术人员：请检查 [archive] 设置（地址、存储桶、密钥）和存储服务。",
                    );
                    alarms.update(a);
                }
            }
            None => {
                self.failing_since = None;
                alarms.clear("replication_failing");
            }
        }
        if let Some(first) = s.stuck.first() {
            alarms.update(alarm(
                "replication_stuck",
                Severity::Warning,
                format!(
                    "{} part(s) of the record cannot be sent to the archive: {} ({})",
                    s.stuck.len(),
                    first.key,
                    first.reason
                ),
                format!("{} 个录像部分无法送达存档", s.stuck.len()),
                "Court IT: the box keeps them; check the box's disk and the archive (the box's log names each).",
                "技术人员：本机仍保留这些内容；请检查本机磁盘和存档（日志中有详细信息）。",
            ));
        } else {
            alarms.clear("replication_stuck");
        }
        if s.lock == "not_enforced" {
            alarms.update(alarm(
                "archive_lock_not_enforced",
                Severity::Warning,
                "The archive accepts the retention lock but does not enforce it: objects in the archive could be deleted before their retention ends".into(),
                "存档接受保留锁定但并未执行：存档中的对象可能被提前删除".into(),
                "Court IT: use a store with Object Lock (see docs/archive.md), or set [archive] retention_days = 0 to stop asking for it.",
                "技术人员：请使用支持对象锁定的存储（见 docs/archive.md），或将 retention_days 设为 0。",
            ));
        } else {
            alarms.clear("archive_lock_not_enforced");
        }
    }

    pub fn retention(&self, r: &RetentionStatus, alarms: &Alarms) {
        if r.blocked {
            let waiting = r.kept.len();
            alarms.update(alarm(
                "retention_blocked",
                Severity::Critical,
                format!(
                    "The disk is nearly full ({} GB free) and {waiting} hearing(s) cannot be removed from the box yet: {}",
                    r.free_bytes / 1_000_000_000,
                    r.kept
                        .first()
                        .map(|(id, why)| format!("{id}: {why}"))
                        .unwrap_or_default()
                ),
                format!("磁盘即将写满，{waiting} 个庭审尚不能从本机删除"),
                "Nothing is deleted that is not safe in the archive. Court IT: restore the link to the archive, or add disk space, now.",
                "未存档的内容绝不会被删除。技术人员：请立即恢复与存档的连接或增加磁盘空间。",
            ));
        } else {
            alarms.clear("retention_blocked");
        }
    }
}

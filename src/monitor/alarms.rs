//! Alarms raised from outside the monitor's own checks (the TSA, accounts, the audit
//! log, the platform pushes), each in plain words in both languages with what to do.

use super::{Alarm, Severity, now};

/// The trusted-timestamp authority cannot be reached (see `timestamp`).
pub fn tsa_alarm(url: &str, error: &str) -> Alarm {
    Alarm {
        key: "tsa_unreachable".into(),
        code: "tsa_unreachable".into(),
        severity: Severity::Warning,
        source: None,
        message: format!(
            "The time-stamping service cannot be reached ({url}): {error}. Hearings are still recorded and sealed."
        ),
        message_zh: format!("无法连接时间戳服务（{url}）。庭审仍在正常录制和封存。"),
        action:
            "Nothing to do in the courtroom; courtrec retries by itself. Tell court IT if it lasts."
                .into(),
        action_zh: "法庭内无需操作，系统会自动重试。如持续存在，请告知技术人员。".into(),
        since: now(),
    }
}

/// An admin reset the password (or role) of a judge who holds grants to sealed
/// hearings: court IT should know who can now watch them.
pub fn account_reset_alarm(user: &str, by: &str, grants: usize) -> Alarm {
    Alarm {
        key: format!("sealed_access_account_reset:{user}"),
        code: "sealed_access_account_reset".into(),
        severity: Severity::Warning,
        source: Some(user.to_string()),
        message: format!(
            "Admin {by} reset the account of {user}, who may watch {grants} sealed hearing(s)."
        ),
        message_zh: format!(
            "管理员 {by} 重置了 {user} 的账户，该账户可查看 {grants} 个不公开庭审。"
        ),
        action: "Court IT: confirm the reset was asked for (see the audit log).".into(),
        action_zh: "技术人员：请确认该重置确有申请（见审计日志）。".into(),
        since: now(),
    }
}

/// The audit log no longer matches its signed heads: entries were removed, edited or
/// reordered, or its end cut off.
pub fn audit_tampered_alarm(what: &str) -> Alarm {
    Alarm {
        key: "audit_tampered".into(),
        code: "audit_tampered".into(),
        severity: Severity::Critical,
        source: None,
        message: format!("The audit log was altered: {what}"),
        message_zh: "审计日志已被篡改。".into(),
        action: "Call court IT: keep the data folder as it is (it is evidence); `courtrec verify DATA/audit` shows what changed.".into(),
        action_zh: "请联系技术人员，保留数据文件夹原样（作为证据）。".into(),
        since: now(),
    }
}

/// The audit log cannot be written: audited reads are refused until it can.
pub fn audit_alarm(error: &str) -> Alarm {
    Alarm {
        key: "audit_failed".into(),
        code: "audit_failed".into(),
        severity: Severity::Critical,
        source: None,
        message: format!(
            "The audit log cannot be written ({error}): judges and parties cannot view recordings until it can. Recording is not affected."
        ),
        message_zh: "审计日志无法写入：在恢复之前无法查看录像。录制不受影响。".into(),
        action: "Call court IT (usually the disk is full or failing).".into(),
        action_zh: "请联系技术人员（通常是磁盘已满或故障）。".into(),
        since: now(),
    }
}

/// The livestream cannot be pushed to the platform over RTMP (see `live::rtmp`).
pub fn rtmp_alarm(error: &str) -> Alarm {
    push_alarm("rtmp_push_failed", error)
}

/// The livestream cannot be published to the platform over WHIP (see `live::whip`).
pub fn whip_alarm(error: &str) -> Alarm {
    push_alarm("whip_push_failed", error)
}

fn push_alarm(code: &str, error: &str) -> Alarm {
    Alarm {
        key: code.into(),
        code: code.into(),
        severity: Severity::Warning,
        source: None,
        message: format!(
            "The livestream cannot be sent to the streaming platform: {error}. Recording and the court's own livestream page are not affected."
        ),
        message_zh: "直播无法推送到直播平台。录制和本院直播页面不受影响。".into(),
        action: "Nothing to do in the courtroom; courtrec retries every few seconds. Tell court IT if it lasts.".into(),
        action_zh: "法庭内无需操作，系统每隔几秒自动重试。如持续存在，请告知技术人员。".into(),
        since: now(),
    }
}

//! Whether the box's wall clock can be trusted. The court rules make the burned-in
//! time part of the evidence, and every segment's wall-clock time comes from this
//! clock: a box whose clock is not kept by a time server (NTP) says so, loudly, before
//! a hearing opens (the `clock_unsynchronised` alarm, logged as a fault in an open
//! hearing). The state is the kernel's NTP discipline, as `timedatectl` shows it
//! ("System clock synchronized"), read with `adjtimex(2)` without changing anything.

use std::sync::OnceLock;

/// The wall clock, Unix ns: what every recorded wall-clock time (events, segments, the
/// time burned into the picture) is read from, so tests can step it.
///
/// Test hook: `COURTREC_TEST_CLOCK_OFFSET_FILE` names a file holding a signed offset
/// in milliseconds added to the system's clock; a test rewrites it to step the clock
/// (+1 h, -10 min) without touching the machine's. Unset (as in production): the
/// system clock as it is.
pub fn now_unix_ns() -> i64 {
    static OFFSET_FILE: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    let real = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let offset_ms = OFFSET_FILE
        .get_or_init(|| std::env::var_os("COURTREC_TEST_CLOCK_OFFSET_FILE").map(Into::into))
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    real.saturating_add(offset_ms.saturating_mul(1_000_000))
}

/// [`now_unix_ns`] as a time.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_nanos(now_unix_ns())
}

/// How far the wall clock may move against the monotonic clock before it counts as a
/// step (NTP slews smaller corrections; a person setting the time, or NTP stepping a
/// clock that was far off, moves it by more).
pub const STEP_THRESHOLD_NS: i64 = 1_000_000_000;

/// The wall clock's step since `epoch_unix_ns` was taken as the wall-clock time of
/// monotonic time 0, now that monotonic time is `mono_ns` and the wall clock reads
/// `wall_unix_ns`: `Some(step)` once it is more than [`STEP_THRESHOLD_NS`] either way.
pub fn step_ns(epoch_unix_ns: i64, mono_ns: i64, wall_unix_ns: i64) -> Option<i64> {
    let step = wall_unix_ns - mono_ns - epoch_unix_ns;
    (step.abs() > STEP_THRESHOLD_NS).then_some(step)
}

/// `Some(true)` synchronised, `Some(false)` not, `None` unknown (the call refused).
/// Tests set `COURTREC_TEST_CLOCK_SYNC=synchronised|unsynchronised` (machines without
/// a time server run the test suite too).
pub fn synchronised() -> Option<bool> {
    static FORCED: OnceLock<Option<bool>> = OnceLock::new();
    let forced = FORCED.get_or_init(|| match std::env::var("COURTREC_TEST_CLOCK_SYNC") {
        Ok(v) if v == "synchronised" => Some(true),
        Ok(v) if v == "unsynchronised" => Some(false),
        _ => None,
    });
    if forced.is_some() {
        return *forced;
    }
    // SAFETY: a zeroed timex with `modes` 0 asks for the state and changes nothing;
    // the kernel only writes into the struct we own.
    let (state, status) = unsafe {
        let mut tx: nix::libc::timex = std::mem::zeroed();
        let state = nix::libc::adjtimex(&mut tx);
        (state, tx.status)
    };
    if state < 0 {
        return None;
    }
    Some(state != nix::libc::TIME_ERROR && status & nix::libc::STA_UNSYNC == 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_step_is_more_than_a_second_either_way() {
        let epoch = 1_795_773_600_000_000_000;
        let mono = 5_000_000_000;
        assert_eq!(super::step_ns(epoch, mono, epoch + mono), None);
        assert_eq!(
            super::step_ns(epoch, mono, epoch + mono + 999_000_000),
            None
        );
        assert_eq!(
            super::step_ns(epoch, mono, epoch + mono + 3_600_000_000_000),
            Some(3_600_000_000_000)
        );
        assert_eq!(
            super::step_ns(epoch, mono, epoch + mono - 600_000_000_000),
            Some(-600_000_000_000)
        );
    }

    #[test]
    fn the_kernel_answers() {
        // Whatever this machine's state, the call is allowed and answers.
        assert!(super::synchronised().is_some());
    }
}

//! Clock steps while the box runs: the wall clock moving against the monotonic clock
//! (the pipeline's) by more than a second, as when NTP steps a clock that was far off
//! or a person sets the time.
//!
//! Media time never jumps (it is the monotonic clock's), so the recording itself is
//! untouched; what a step changes is the time of day shown for it. Without this, the
//! burned-in time and the segments' wall-clock times would keep the old clock while
//! events logged afterwards carried the new one. Instead, at the step: the burned-in
//! time moves to the new clock (the capture's epoch), the open hearing logs a
//! `clock_step` event with the step's size, and segments from that media time on take
//! their wall-clock times from the event (`archive::wallclock`), so every time of day
//! in the hearing agrees with the clock it was read from and the event says why the
//! times jump.

use super::hearings::{HearingService, append};
use crate::archive::records::{EventKind, format_wall};
use crate::error::Result;

impl HearingService {
    /// Compares the wall clock with the pipeline's clock; on a step, moves the burned-in
    /// time and logs the step in the open hearing. Returns the step (ns), if any.
    /// Called twice a second by the monitor.
    pub fn watch_clock(&self) -> Option<i64> {
        let rt = self.capture.running_time_ns()?;
        let epoch_ns = self.capture.wall_epoch_ns();
        let step_ns = crate::clock::step_ns(epoch_ns, rt, crate::clock::now_unix_ns())?;
        self.capture.set_wall_epoch_ns(epoch_ns + step_ns);
        let step_ms = step_ns / 1_000_000;
        tracing::warn!(
            step_ms,
            "the wall clock was corrected by {}: the burned-in time follows it",
            crate::archive::wallclock::fmt_step(step_ms)
        );
        if let Err(e) = self.clock_stepped(step_ns, rt) {
            tracing::error!("logging the clock step in the open hearing: {e}");
        }
        Some(step_ns)
    }

    /// Logs a step in the hearing open or in recess, and moves its anchor.
    fn clock_stepped(&self, step_ns: i64, rt: i64) -> Result<()> {
        let mut active = self.lock()?;
        let Some(a) = active.as_mut() else {
            return Ok(());
        };
        let at = a.timebase.media_ns(rt).max(a.run_start_ns);
        a.timebase.wall_at_base_unix_ns += step_ns;
        let step_ms = step_ns / 1_000_000;
        let mut ev = self.event(&a.id, EventKind::ClockStep);
        ev.wall_time = format_wall(a.timebase.wall(at));
        ev.media_time_ns = Some(at);
        ev.step_ms = Some(step_ms);
        ev.text = Some(format!(
            "the box's clock was corrected by {}; times of day from here on follow the corrected clock",
            crate::archive::wallclock::fmt_step(step_ms)
        ));
        append(&a.log, ev).map(|_| ())
    }
}

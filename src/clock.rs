//! Whether the box's wall clock can be trusted. The court rules make the burned-in
//! time part of the evidence, and every segment's wall-clock time comes from this
//! clock: a box whose clock is not kept by a time server (NTP) says so, loudly, before
//! a hearing opens (the `clock_unsynchronised` alarm, logged as a fault in an open
//! hearing). The state is the kernel's NTP discipline, as `timedatectl` shows it
//! ("System clock synchronized"), read with `adjtimex(2)` without changing anything.

use std::sync::OnceLock;

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
    fn the_kernel_answers() {
        // Whatever this machine's state, the call is allowed and answers.
        assert!(super::synchronised().is_some());
    }
}

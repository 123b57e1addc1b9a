//! Fault injection for tests: makes the n-th write or fsync at a named site fail, so
//! the fail-stop paths (a manifest or audit append that fails half-way, a checkpoint
//! that cannot be written) are exercised for real rather than trusted.
//!
//! Armed in-process with [`arm`] (unit tests) or, for the daemon, from the environment
//! variable `COURTREC_FAULTS` read once by [`arm_from_env`]: a comma-separated list of
//! `site@n` (fail the n-th call at `site`, counting from 1), `site@nxk` (fail k calls
//! from the n-th on) or `site@n+` (fail the n-th call and every one after it). Sites: `manifest.write`, `manifest.sync`,
//! `audit.write`, `audit.sync`, `checkpoint.write`, `devlog.write`, `index.write`.
//! Nothing is armed unless a test asks: in normal operation [`hit`] is one atomic load.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone)]
struct Plan {
    /// Calls seen so far.
    calls: u64,
    /// The first call that fails (1-based).
    nth: u64,
    /// How many calls from `nth` on fail (`u64::MAX`: all of them).
    count: u64,
    /// Only files under this folder (tests running side by side arm their own).
    scope: Option<std::path::PathBuf>,
}

static ARMED: AtomicBool = AtomicBool::new(false);
static PLANS: Mutex<Option<HashMap<String, Plan>>> = Mutex::new(None);

/// Makes the `nth` call (1-based) at `site` fail; with `sticky`, every later one too.
pub fn arm(site: &str, nth: u64, sticky: bool) {
    arm_scoped(site, nth, sticky, None)
}

/// [`arm`] for files under `scope` only.
pub fn arm_scoped(site: &str, nth: u64, sticky: bool, scope: Option<&std::path::Path>) {
    arm_n(site, nth, if sticky { u64::MAX } else { 1 }, scope)
}

/// Makes `count` calls at `site` fail from the `nth` on.
pub fn arm_n(site: &str, nth: u64, count: u64, scope: Option<&std::path::Path>) {
    if let Ok(mut p) = PLANS.lock() {
        p.get_or_insert_with(HashMap::new).insert(
            site.to_string(),
            Plan {
                calls: 0,
                nth,
                count,
                scope: scope.map(std::path::Path::to_path_buf),
            },
        );
        ARMED.store(true, Ordering::SeqCst);
    }
}

/// Removes every plan.
pub fn disarm() {
    if let Ok(mut p) = PLANS.lock() {
        *p = None;
        ARMED.store(false, Ordering::SeqCst);
    }
}

/// Arms the plans in `COURTREC_FAULTS` (see the module comment). Returns what it armed.
pub fn arm_from_env() -> Vec<String> {
    let Ok(spec) = std::env::var("COURTREC_FAULTS") else {
        return Vec::new();
    };
    let mut armed = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((site, n)) = item.split_once('@') else {
            continue;
        };
        let (n, count) = match (n.strip_suffix('+'), n.split_once('x')) {
            (Some(n), _) => (n, Some(u64::MAX)),
            (None, Some((n, k))) => (n, k.parse().ok()),
            (None, None) => (n, Some(1)),
        };
        if let (Ok(nth), Some(count)) = (n.parse::<u64>(), count) {
            arm_n(site, nth.max(1), count.max(1), None);
            armed.push(item.to_string());
        }
    }
    armed
}

/// Called at each site before the real operation on `path`: an injected I/O error
/// (EIO) when a plan says this call fails.
pub fn hit(site: &str, path: &std::path::Path) -> std::io::Result<()> {
    if !ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let fail = PLANS
        .lock()
        .ok()
        .and_then(|mut p| {
            let plan = p.as_mut()?.get_mut(site)?;
            if plan.scope.as_ref().is_some_and(|s| !path.starts_with(s)) {
                return None;
            }
            plan.calls += 1;
            Some(plan.calls >= plan.nth && plan.calls - plan.nth < plan.count)
        })
        .unwrap_or(false);
    if fail {
        Err(std::io::Error::from_raw_os_error(5))
    } else {
        Ok(())
    }
}

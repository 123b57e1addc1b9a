//! Back-off for logins: after a few failures, an account (or an address) must wait,
//! twice as long after each further failure, up to a limit; meanwhile the API answers
//! 429 with `Retry-After`, without checking the password (so a flood costs no Argon2
//! work and guesses get nowhere). A success clears the account's and the address's
//! count. Time comes from the caller, so tests move it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How lenient the back-off is (`[login]` in the config).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Failures allowed before the first wait.
    pub free_attempts: u32,
    /// The first wait; each further failure doubles it.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

pub struct Throttle {
    policy: Policy,
    entries: Mutex<HashMap<String, Entry>>,
}

/// Entries idle this long are forgotten (keeps the map small under a flood of names).
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// The most keys remembered; beyond it the oldest are dropped.
const MAX_KEYS: usize = 100_000;

impl Throttle {
    pub fn new(policy: Policy) -> Throttle {
        Throttle {
            policy,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must still wait, if it must.
    pub fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let e = self.entries.lock().ok()?;
        let until = e.get(key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure of `key` (scaled: an address allows `scale` times the attempts
    /// of an account, as a courthouse's users may share one). Returns the wait now due.
    pub fn failed(&self, key: &str, scale: u32, now: Instant) -> Option<Duration> {
        let mut map = self.entries.lock().ok()?;
        if map.len() >= MAX_KEYS {
            map.retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let e = map.entry(key.to_string()).or_insert(Entry {
            failures: 0,
            locked_until: None,
            last: now,
        });
        if now.duration_since(e.last) > FORGET_AFTER {
            e.failures = 0;
        }
        e.failures += 1;
        e.last = now;
        let free = self.policy.free_attempts.saturating_mul(scale.max(1));
        if e.failures < free {
            return None;
        }
        let doublings = (e.failures - free).min(20);
        let wait = self
            .policy
            .base
            .saturating_mul(1u32 << doublings)
            .min(self.policy.max);
        e.locked_until = Some(now + wait);
        Some(wait)
    }

    /// A success: `key` starts afresh.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_after_the_free_attempts_and_a_success_clears_them() {
        let t = Throttle::new(Policy {
            free_attempts: 3,
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        assert_eq!(t.failed("user:a", 1, t0), None);
        assert_eq!(t.failed("user:a", 1, t0), None);
        assert_eq!(t.failed("user:a", 1, t0), Some(Duration::from_secs(1)));
        assert_eq!(t.wait("user:a", t0), Some(Duration::from_secs(1)));
        assert_eq!(t.wait("user:a", t0 + Duration::from_secs(2)), None);
        assert_eq!(
            t.failed("user:a", 1, t0 + Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
        for _ in 0..10 {
            t.failed("user:a", 1, t0 + Duration::from_secs(5));
        }
        assert_eq!(
            t.wait("user:a", t0 + Duration::from_secs(5)),
            Some(Duration::from_secs(10)),
            "capped"
        );
        assert_eq!(t.wait("user:b", t0), None, "per key");
        assert_eq!(t.failed("ip:1", 4, t0), None, "addresses allow more");
        t.succeeded("user:a");
        assert_eq!(t.wait("user:a", t0 + Duration::from_secs(5)), None);
        // Idle for an hour: forgotten.
        for _ in 0..3 {
            t.failed("user:c", 1, t0);
        }
        assert_eq!(t.failed("user:c", 1, t0 + Duration::from_secs(4000)), None);
    }
}

//! systemd's notify protocol (sd_notify(3)), spoken directly (a datagram to
//! `$NOTIFY_SOCKET`; no libsystemd): `READY=1` once capture runs and the API listens,
//! `STATUS=` with one line a person can read, and `WATCHDOG=1` pings sent only while
//! the box really works, so that systemd restarts a wedged process (`WatchdogSec=` in
//! the unit) and the open hearing resumes with a recovery event.
//!
//! Alive means: frames reach the recorder from every track that has delivered any
//! (a lost camera's track carries its fallback picture, so a silent track is a wedged
//! pipeline, compositor or encoder), the HTTP server answers on its own address, and,
//! while a hearing records, no writer has frames waiting that it has not taken.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where systemd listens, from `$NOTIFY_SOCKET` (a path, or `@name` for an abstract
/// socket). Absent when not run by systemd with `Type=notify`.
pub struct Notifier {
    sock: UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
}

impl Notifier {
    pub fn from_env() -> Option<Notifier> {
        let target = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str());
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name)
            }
            None => std::os::unix::net::SocketAddr::from_pathname(&target),
        };
        let made = addr.and_then(|addr| Ok((UnixDatagram::unbound()?, addr)));
        match made {
            Ok((sock, addr)) => Some(Notifier { sock, addr }),
            Err(e) => {
                tracing::warn!("NOTIFY_SOCKET is set but unusable: {e}");
                None
            }
        }
    }

    /// Sends one message (`KEY=value` lines). A failure is logged, never fatal: the
    /// recording does not depend on systemd hearing us.
    pub fn send(&self, msg: &str) {
        if let Err(e) = self.sock.send_to_addr(msg.as_bytes(), &self.addr) {
            tracing::warn!("telling systemd {:?}: {e}", msg.lines().next());
        }
    }
}

/// The watchdog interval systemd asked for (`$WATCHDOG_USEC`, for this process when
/// `$WATCHDOG_PID` names one).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// What the watchdog checks and what the status line says, supplied by the daemon.
pub trait Health: Send + 'static {
    /// `Err` names what is wrong in plain words (the ping is withheld).
    fn alive(&self) -> Result<(), String>;
    /// One line for `systemctl status`.
    fn status(&self) -> String;
}

/// Sends `READY=1` with the first status, then every half watchdog interval (or every
/// 10 s without a watchdog) the status and, while [`Health::alive`], a ping.
pub fn spawn(n: Notifier, health: impl Health) {
    let interval = watchdog_interval();
    n.send(&format!("READY=1\nSTATUS={}", health.status()));
    let tick = interval.map_or(Duration::from_secs(10), |i| i / 2);
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut was_ok = true;
            loop {
                std::thread::sleep(tick);
                match health.alive() {
                    Ok(()) => {
                        let ping = if interval.is_some() { "WATCHDOG=1\n" } else { "" };
                        n.send(&format!("{ping}STATUS={}", health.status()));
                        if !was_ok {
                            tracing::warn!("the box works again: watchdog pings resume");
                        }
                        was_ok = true;
                    }
                    Err(why) => {
                        if was_ok {
                            tracing::error!(
                                "withholding the watchdog ping (systemd will restart courtrec): {why}"
                            );
                        }
                        n.send(&format!("STATUS=NOT WORKING: {why}"));
                        was_ok = false;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the watchdog thread: {e}");
    }
}

/// Asks the daemon's own HTTP server for `/healthz` (any answer will do: a redirect to
/// HTTPS is an answer): a wedged runtime or a full accept queue gets no reply.
pub fn http_answers(addr: std::net::SocketAddr, timeout: Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    let probe = || -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1."))
    };
    match probe() {
        Ok(true) => Ok(()),
        Ok(false) => Err("the web server answers garbage".into()),
        Err(e) => Err(format!("the web server does not answer ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaks_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let addr = std::os::unix::net::SocketAddr::from_pathname(&path).unwrap();
        let n = Notifier {
            sock: UnixDatagram::unbound().unwrap(),
            addr,
        };
        n.send("READY=1");
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
    }

    #[test]
    fn http_probe_tells_an_answer_from_silence() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // Accepted but never answered: the probe gives up after its timeout.
        let held = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            std::thread::sleep(Duration::from_millis(600));
            drop(s);
            l
        });
        assert!(http_answers(addr, Duration::from_millis(200)).is_err());
        let l = held.join().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\n\r\nok").unwrap();
        });
        assert_eq!(http_answers(addr, Duration::from_secs(5)), Ok(()));
    }
}
